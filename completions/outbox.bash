# Bash completion for outbox, and for the sendmail and mailq links to it.
_outbox() {
    local cur prev command action
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}

    local connection="--host --port --helo --timeout --deadline --no-pipelining --tls --tls-trust-file
        --tls-fingerprint --tls-certcheck --tls-cert-file --tls-key-file --tls-min-version --user --auth
        --password-command --password-env --password-file --allow-plaintext-auth"
    local store="--store --retry-delay --retry-max-delay --max-queue-time --bounce-from"

    case $prev in
        --tls) COMPREPLY=($(compgen -W "off opportunistic starttls implicit" -- "$cur")); return ;;
        --tls-certcheck) COMPREPLY=($(compgen -W "on off" -- "$cur")); return ;;
        --tls-min-version) COMPREPLY=($(compgen -W "1.2 1.3" -- "$cur")); return ;;
        --auth) COMPREPLY=($(compgen -W "SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN XOAUTH2 OAUTHBEARER" -- "$cur")); return ;;
        -N) COMPREPLY=($(compgen -W "never success failure delay success,failure success,failure,delay" -- "$cur")); return ;;
        -R) COMPREPLY=($(compgen -W "full hdrs" -- "$cur")); return ;;
        --folder) COMPREPLY=($(compgen -W "outbox sent failed drafts" -- "$cur")); return ;;
        --encoding) COMPREPLY=($(compgen -W "mime uuencode" -- "$cur")); return ;;
        --priority) COMPREPLY=($(compgen -W "high normal low" -- "$cur")); return ;;
        -C|--config|--file|-X|--store|--tls-trust-file|--tls-cert-file|--tls-key-file|--password-file|--maildir|--html|--inline|--output)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac

    command=${COMP_WORDS[0]##*/}
    if [[ $command == outbox ]]; then
        if (( COMP_CWORD == 1 )); then
            COMPREPLY=($(compgen -W "send queue compose sendmail mailq capture check help --help --version" -- "$cur"))
            return
        fi
        command=${COMP_WORDS[1]}
    fi

    case $command in
        send)
            COMPREPLY=($(compgen -W "-t -i -oi -f -r -F -a --account -C --config -N -R -V -X --file --queue
                --queue-only --hold -v --verbose --debug --help $connection $store" -- "$cur")) ;;
        sendmail)
            COMPREPLY=($(compgen -W "-t -i -oi -f -r -F -N -R -V -X -a -C -v -bm -bp -q --help" -- "$cur")) ;;
        queue)
            action=${COMP_WORDS[2]}
            if (( COMP_CWORD == 2 )); then
                COMPREPLY=($(compgen -W "list show flush run retry hold release delete" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "--json --folder --parallel --now --poll --all --debug -C --config
                    -a --account -X --help $store" -- "$cur"))
            fi ;;
        compose)
            COMPREPLY=($(compgen -W "-s -a --html --inline --from -c --cc -b --bcc --reply-to --charset --encoding
                --receipt --priority --no-bcc-field -o --output --help" -- "$cur")) ;;
        capture)
            COMPREPLY=($(compgen -W "--port --listen --maildir --max-messages --max-size --help" -- "$cur")) ;;
        check)
            COMPREPLY=($(compgen -W "--debug --help $connection" -- "$cur")) ;;
        mailq)
            COMPREPLY=($(compgen -W "-C -a" -- "$cur")) ;;
    esac
}
complete -F _outbox outbox sendmail mailq
