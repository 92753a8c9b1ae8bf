# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_singularity_global_optspecs
    string join \n l/loglevel= b/backup f/configuration= c/cache= H/loghandler= F/functions= root= h/help V/version
end

function __fish_singularity_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_singularity_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_singularity_using_subcommand
    set -l cmd (__fish_singularity_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c singularity -n "__fish_singularity_needs_command" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_needs_command" -s f -l configuration -d 'Directory holding singularity.conf (the directory, not the file)' -r -F
complete -c singularity -n "__fish_singularity_needs_command" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_needs_command" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_needs_command" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_needs_command" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_needs_command" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_needs_command" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_needs_command" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_needs_command" -f -a "daemon" -d 'Serve the hypervisor\'s requests'
complete -c singularity -n "__fish_singularity_needs_command" -f -a "apply" -d 'Re-apply the cached configuration to the live system'
complete -c singularity -n "__fish_singularity_needs_command" -f -a "config" -d 'Print the effective configuration as INI, each value after a comment naming its source (default, file and line, or command line)'
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s r -l run -d 'Run-time directory, holding the socket communicator\'s socket unless --socket or [socket] path names one; created 0755 when missing' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s p -l pidfile -d 'Pid file (the daemon also locks <root>/run/singularity.lock: one per system)' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s u -l uid -d 'User to run as' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s g -l gid -d 'Group to run as' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -l communicator -d 'Transport for requests' -r -f -a "xen\t''
socket\t''
qga\t''"
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -l xenstore -d 'XenStore socket or device (xen communicator)' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -l socket -d 'Unix socket path (socket communicator; default <run>/agent.sock)' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s d -l configurators -d 'Directories of external configurators, absolute paths (replaces [daemon] configurators)' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s f -l configuration -d 'Directory holding singularity.conf (the directory, not the file)' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -l coredumps -d 'Allow core dumps'
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -l nodaemonize -d 'Stay in the foreground'
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s f -l configuration -d 'Directory holding singularity.conf (the directory, not the file)' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand apply" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand apply" -l noop -d 'Print a unified diff of every file that would change, and change nothing ([apply] noop = true does the same)'
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand config" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand config" -s f -l configuration -d 'Directory holding singularity.conf (the directory, not the file)' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand config" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand config" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand config" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand config" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand config" -l default -d 'Print the fully commented default configuration file'
complete -c singularity -n "__fish_singularity_using_subcommand config" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand config" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand config" -s V -l version -d 'Print version'
