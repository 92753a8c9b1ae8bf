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
complete -c singularity -n "__fish_singularity_needs_command" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_needs_command" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_needs_command" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_needs_command" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_needs_command" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_needs_command" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_needs_command" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_needs_command" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_needs_command" -f -a "demo" -d 'Show the whole protocol against a simulated Xen host, with no Xen and no root'
complete -c singularity -n "__fish_singularity_needs_command" -f -a "daemon" -d 'Serve the hypervisor\'s requests'
complete -c singularity -n "__fish_singularity_needs_command" -f -a "apply" -d 'Re-apply the cached configuration to the live system'
complete -c singularity -n "__fish_singularity_needs_command" -f -a "xenstored" -d 'Serve a simulated XenStore on Unix sockets (for tests, demos and development)'
complete -c singularity -n "__fish_singularity_needs_command" -f -a "config" -d 'Print configuration'
complete -c singularity -n "__fish_singularity_needs_command" -f -a "host" -d 'Drive a guest\'s agent from dom0, as nova and the dom0 plugin do'
complete -c singularity -n "__fish_singularity_using_subcommand demo" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand demo" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand demo" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand demo" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand demo" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand demo" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand demo" -l keep -d 'Leave the guest root in place for inspection'
complete -c singularity -n "__fish_singularity_using_subcommand demo" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand demo" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand demo" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s r -l run -d 'Run-time directory' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s p -l pidfile -d 'Pid file (the daemon also locks <root>/run/singularity.lock: one per system)' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s u -l uid -d 'User to run as' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s g -l gid -d 'Group to run as' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -l communicator -d 'Transport for requests' -r -f -a "xen\t'XenStore (the hypervisor)'
socket\t'A local Unix socket, one JSON request per line'"
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -l xenstore -d 'XenStore socket or device (xen communicator)' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -l socket -d 'Unix socket path (socket communicator)' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand daemon" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
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
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand apply" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand apply" -l noop -d 'Print a unified diff of every file that would change, and change nothing'
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand apply" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand xenstored" -l socket -d 'The privileged (dom0) socket' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand xenstored" -l guest -d 'A guest\'s xenbus as a stream socket: DOMID:PATH (repeatable)' -r
complete -c singularity -n "__fish_singularity_using_subcommand xenstored" -l guest-device -d 'A guest\'s xenbus emulating /dev/xen/xenbus exactly (seqpacket): DOMID:PATH' -r
complete -c singularity -n "__fish_singularity_using_subcommand xenstored" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand xenstored" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand xenstored" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand xenstored" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand xenstored" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand xenstored" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand xenstored" -l oxenstored -d 'Behave like oxenstored (2048-byte values for everyone, its quirks)'
complete -c singularity -n "__fish_singularity_using_subcommand xenstored" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand xenstored" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand xenstored" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand config" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand config" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand config" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand config" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand config" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand config" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand config" -l default -d 'Print the fully commented default configuration file'
complete -c singularity -n "__fish_singularity_using_subcommand config" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand config" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand config" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -l xenstore -d 'The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -l domid -d 'The guest\'s domain id' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -l timeout -d 'Seconds to wait for a reply (default 30, 60 for resetnetwork)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -l json -d 'Also print the raw reply object'
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -f -a "version" -d 'Ask the agent\'s version'
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -f -a "features" -d 'Ask the agent\'s features'
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -f -a "password" -d 'Key exchange, then set root\'s password (read from standard input if PASSWORD is - or absent)'
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -f -a "inject" -d 'Inject a file (contents from FILE, or standard input if FILE is - or absent)'
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -f -a "resetnetwork" -d 'Ask the agent to reconfigure networking from vm-data'
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -f -a "agentupdate" -d 'Ask the agent to update itself'
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -f -a "set-network" -d 'Write one NIC\'s vm-data/networking entry, as nova does'
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -f -a "set-hostname" -d 'Write vm-data/hostname, as nova does'
complete -c singularity -n "__fish_singularity_using_subcommand host; and not __fish_seen_subcommand_from version features password inject resetnetwork agentupdate set-network set-hostname raw" -f -a "raw" -d 'Send any request name and value (the value is sent as a JSON string)'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from version" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from version" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from version" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from version" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from version" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from version" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from version" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from version" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from version" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from features" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from features" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from features" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from features" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from features" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from features" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from features" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from features" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from features" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from password" -l md -d 'Key derivation digest' -r -f -a "md5\t'OpenSSL before 1.1.0'
sha256\t'OpenSSL 1.1.0 and later'"
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from password" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from password" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from password" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from password" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from password" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from password" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from password" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from password" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from password" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from inject" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from inject" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from inject" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from inject" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from inject" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from inject" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from inject" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from inject" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from inject" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from resetnetwork" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from resetnetwork" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from resetnetwork" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from resetnetwork" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from resetnetwork" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from resetnetwork" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from resetnetwork" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from resetnetwork" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from resetnetwork" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from agentupdate" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from agentupdate" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from agentupdate" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from agentupdate" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from agentupdate" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from agentupdate" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from agentupdate" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from agentupdate" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from agentupdate" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -l mac -d 'MAC address of the NIC' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -l label -d 'Network label' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -l ip -d 'IPv4 address/prefix' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -l gateway -d 'IPv4 gateway' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -l ip6 -d 'IPv6 address/prefix' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -l gateway6 -d 'IPv6 gateway' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -l dns -d 'DNS server (repeatable)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -l route -d 'Static route DEST/PREFIX,VIA (repeatable)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-network" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-hostname" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-hostname" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-hostname" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-hostname" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-hostname" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-hostname" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-hostname" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-hostname" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from set-hostname" -s V -l version -d 'Print version'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from raw" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from raw" -s f -l configuration -d 'Directory holding singularity.conf' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from raw" -s c -l cache -d 'Directory for the cache of written files' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from raw" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from raw" -s F -l functions -d 'Functions to manage (comma-separated, or all)' -r
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from raw" -l root -d 'Directory standing for / of the managed system' -r -F
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from raw" -s b -l backup -d 'Keep a .<name>.bak copy of every replaced file'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from raw" -s h -l help -d 'Print help'
complete -c singularity -n "__fish_singularity_using_subcommand host; and __fish_seen_subcommand_from raw" -s V -l version -d 'Print version'
