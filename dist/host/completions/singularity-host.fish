# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_singularity_host_global_optspecs
    string join \n l/loglevel= H/loghandler= xenstore= domid= timeout= json h/help V/version
end

function __fish_singularity_host_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_singularity_host_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_singularity_host_using_subcommand
    set -l cmd (__fish_singularity_host_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c singularity-host -n "__fish_singularity_host_needs_command" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity-host -n "__fish_singularity_host_needs_command" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity-host -n "__fish_singularity_host_needs_command" -l xenstore -d 'The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places)' -r
complete -c singularity-host -n "__fish_singularity_host_needs_command" -l domid -d 'The guest\'s domain id (agent commands)' -r
complete -c singularity-host -n "__fish_singularity_host_needs_command" -l timeout -d 'Seconds to wait for a reply (default 30, 60 for resetnetwork)' -r
complete -c singularity-host -n "__fish_singularity_host_needs_command" -l json -d 'Also print the raw reply object'
complete -c singularity-host -n "__fish_singularity_host_needs_command" -s h -l help -d 'Print help'
complete -c singularity-host -n "__fish_singularity_host_needs_command" -s V -l version -d 'Print version'
complete -c singularity-host -n "__fish_singularity_host_needs_command" -f -a "demo" -d 'Show the whole protocol against a simulated Xen host, with no Xen and no root'
complete -c singularity-host -n "__fish_singularity_host_needs_command" -f -a "xenstored" -d 'Serve a simulated XenStore on Unix sockets (for tests, demos and development)'
complete -c singularity-host -n "__fish_singularity_host_needs_command" -f -a "version" -d 'Ask the agent\'s version'
complete -c singularity-host -n "__fish_singularity_host_needs_command" -f -a "features" -d 'Ask the agent\'s features'
complete -c singularity-host -n "__fish_singularity_host_needs_command" -f -a "password" -d 'Key exchange, then set root\'s password (read from standard input if PASSWORD is - or absent)'
complete -c singularity-host -n "__fish_singularity_host_needs_command" -f -a "inject" -d 'Inject a file (contents from FILE, or standard input if FILE is - or absent)'
complete -c singularity-host -n "__fish_singularity_host_needs_command" -f -a "resetnetwork" -d 'Ask the agent to reconfigure networking from vm-data'
complete -c singularity-host -n "__fish_singularity_host_needs_command" -f -a "agentupdate" -d 'Ask the agent to update itself'
complete -c singularity-host -n "__fish_singularity_host_needs_command" -f -a "set-network" -d 'Write one NIC\'s vm-data/networking entry, as nova does'
complete -c singularity-host -n "__fish_singularity_host_needs_command" -f -a "set-hostname" -d 'Write vm-data/hostname, as nova does'
complete -c singularity-host -n "__fish_singularity_host_needs_command" -f -a "raw" -d 'Send any request name and value (the value is sent as a JSON string)'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand demo" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand demo" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand demo" -l xenstore -d 'The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand demo" -l domid -d 'The guest\'s domain id (agent commands)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand demo" -l timeout -d 'Seconds to wait for a reply (default 30, 60 for resetnetwork)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand demo" -l keep -d 'Leave the guest root in place for inspection'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand demo" -l json -d 'Also print the raw reply object'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand demo" -s h -l help -d 'Print help'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand demo" -s V -l version -d 'Print version'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand xenstored" -l socket -d 'The privileged (dom0) socket' -r -F
complete -c singularity-host -n "__fish_singularity_host_using_subcommand xenstored" -l guest -d 'A guest\'s xenbus as a stream socket: DOMID:PATH (repeatable)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand xenstored" -l guest-device -d 'A guest\'s xenbus emulating /dev/xen/xenbus exactly (seqpacket): DOMID:PATH' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand xenstored" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand xenstored" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand xenstored" -l xenstore -d 'The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand xenstored" -l domid -d 'The guest\'s domain id (agent commands)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand xenstored" -l timeout -d 'Seconds to wait for a reply (default 30, 60 for resetnetwork)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand xenstored" -l oxenstored -d 'Behave like oxenstored (2048-byte values for everyone, its quirks)'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand xenstored" -l json -d 'Also print the raw reply object'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand xenstored" -s h -l help -d 'Print help'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand xenstored" -s V -l version -d 'Print version'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand version" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand version" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand version" -l xenstore -d 'The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand version" -l domid -d 'The guest\'s domain id (agent commands)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand version" -l timeout -d 'Seconds to wait for a reply (default 30, 60 for resetnetwork)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand version" -l json -d 'Also print the raw reply object'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand version" -s h -l help -d 'Print help'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand version" -s V -l version -d 'Print version'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand features" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand features" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand features" -l xenstore -d 'The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand features" -l domid -d 'The guest\'s domain id (agent commands)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand features" -l timeout -d 'Seconds to wait for a reply (default 30, 60 for resetnetwork)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand features" -l json -d 'Also print the raw reply object'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand features" -s h -l help -d 'Print help'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand features" -s V -l version -d 'Print version'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand password" -l md -d 'Key derivation digest' -r -f -a "md5\t'OpenSSL before 1.1.0'
sha256\t'OpenSSL 1.1.0 and later'"
complete -c singularity-host -n "__fish_singularity_host_using_subcommand password" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand password" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand password" -l xenstore -d 'The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand password" -l domid -d 'The guest\'s domain id (agent commands)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand password" -l timeout -d 'Seconds to wait for a reply (default 30, 60 for resetnetwork)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand password" -l json -d 'Also print the raw reply object'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand password" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand password" -s V -l version -d 'Print version'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand inject" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand inject" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand inject" -l xenstore -d 'The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand inject" -l domid -d 'The guest\'s domain id (agent commands)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand inject" -l timeout -d 'Seconds to wait for a reply (default 30, 60 for resetnetwork)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand inject" -l json -d 'Also print the raw reply object'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand inject" -s h -l help -d 'Print help'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand inject" -s V -l version -d 'Print version'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand resetnetwork" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand resetnetwork" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand resetnetwork" -l xenstore -d 'The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand resetnetwork" -l domid -d 'The guest\'s domain id (agent commands)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand resetnetwork" -l timeout -d 'Seconds to wait for a reply (default 30, 60 for resetnetwork)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand resetnetwork" -l json -d 'Also print the raw reply object'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand resetnetwork" -s h -l help -d 'Print help'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand resetnetwork" -s V -l version -d 'Print version'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand agentupdate" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand agentupdate" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand agentupdate" -l xenstore -d 'The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand agentupdate" -l domid -d 'The guest\'s domain id (agent commands)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand agentupdate" -l timeout -d 'Seconds to wait for a reply (default 30, 60 for resetnetwork)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand agentupdate" -l json -d 'Also print the raw reply object'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand agentupdate" -s h -l help -d 'Print help'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand agentupdate" -s V -l version -d 'Print version'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -l mac -d 'MAC address of the NIC' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -l label -d 'Network label' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -l ip -d 'IPv4 address/prefix' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -l gateway -d 'IPv4 gateway' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -l ip6 -d 'IPv6 address/prefix' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -l gateway6 -d 'IPv6 gateway' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -l dns -d 'DNS server (repeatable)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -l route -d 'Static route DEST/PREFIX,VIA (repeatable)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -l xenstore -d 'The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -l domid -d 'The guest\'s domain id (agent commands)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -l timeout -d 'Seconds to wait for a reply (default 30, 60 for resetnetwork)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -l json -d 'Also print the raw reply object'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -s h -l help -d 'Print help'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-network" -s V -l version -d 'Print version'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-hostname" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-hostname" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-hostname" -l xenstore -d 'The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-hostname" -l domid -d 'The guest\'s domain id (agent commands)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-hostname" -l timeout -d 'Seconds to wait for a reply (default 30, 60 for resetnetwork)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-hostname" -l json -d 'Also print the raw reply object'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-hostname" -s h -l help -d 'Print help'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand set-hostname" -s V -l version -d 'Print version'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand raw" -s l -l loglevel -d 'Lowest severity logged: debug, info, warning, error, critical' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand raw" -s H -l loghandler -d 'Log destination: syslog, journald, - (standard error) or a file path' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand raw" -l xenstore -d 'The privileged XenStore socket (default: $XENSTORED_PATH, then the usual places)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand raw" -l domid -d 'The guest\'s domain id (agent commands)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand raw" -l timeout -d 'Seconds to wait for a reply (default 30, 60 for resetnetwork)' -r
complete -c singularity-host -n "__fish_singularity_host_using_subcommand raw" -l json -d 'Also print the raw reply object'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand raw" -s h -l help -d 'Print help'
complete -c singularity-host -n "__fish_singularity_host_using_subcommand raw" -s V -l version -d 'Print version'
