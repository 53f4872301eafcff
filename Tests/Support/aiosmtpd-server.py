#!/usr/bin/env python3
"""Run an aiosmtpd SMTP server on 127.0.0.1 for the Outbox tests.

    aiosmtpd-server.py --port P --maildir DIR
        [--starttls --cert C --key K | --implicit-tls --cert C --key K]
        [--auth-user U --auth-password-file F] [--require-auth]
        [--auth-require-tls] [--require-starttls]

Written against Debian's python3-aiosmtpd 1.4.3, run with Debian's /usr/bin/python3.
The server prints one line "ready PORT" on standard output once it listens, so
--port 0 lets the kernel choose a free port. It logs to standard error and
exits with status 0 on SIGTERM or SIGINT.

Each accepted message becomes one file in DIR/new, written to DIR/tmp first and
then renamed, as the Maildir format requires. The file starts with lines that
this server adds, each ending in CRLF:

    X-MailFrom: SENDER            the MAIL FROM address, empty for <>
    X-RcptTo: RCPT1, RCPT2        the RCPT TO addresses
    X-AuthLogin: USER             only when the client authenticated

and then contains the DATA bytes exactly as received, after dot-unstuffing.

AUTH offers PLAIN and LOGIN, and only with --auth-user. Other credentials get
"535 5.7.8 Authentication credentials invalid". aiosmtpd's own default is
auth_require_tls=True, which hides AUTH until STARTTLS. This script always sets
it explicitly: AUTH works before STARTTLS unless --auth-require-tls is given.
"""

import argparse
import asyncio
import hmac
import logging
import os
import signal
import socket
import ssl
import sys
import time
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

log = logging.getLogger("aiosmtpd-server")

SERVER_HOSTNAME = "aiosmtpd.localhost.test"


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        description="Run an aiosmtpd SMTP server on 127.0.0.1 that saves each message into a Maildir."
    )
    parser.add_argument("--port", type=int, required=True,
                        help="TCP port on 127.0.0.1 to listen on, or 0 to let the kernel choose one")
    parser.add_argument("--maildir", required=True,
                        help="Maildir that receives the messages, with tmp, new and cur created when missing")
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--starttls", action="store_true",
                     help="offer STARTTLS with --cert and --key")
    tls.add_argument("--implicit-tls", action="store_true",
                     help="start TLS with --cert and --key on connect (SMTPS, RFC 8314)")
    parser.add_argument("--cert", help="PEM file with the server certificate and any intermediate certificates")
    parser.add_argument("--key", help="PEM file with the private key of --cert")
    parser.add_argument("--auth-user", help="the only user name that AUTH PLAIN and LOGIN accept")
    parser.add_argument("--auth-password-file",
                        help="file with the password of --auth-user, without one trailing newline (LF or CRLF)")
    parser.add_argument("--require-auth", action="store_true",
                        help="reply 530 to MAIL, RCPT and DATA until the client has authenticated")
    parser.add_argument("--auth-require-tls", action="store_true",
                        help="offer and accept AUTH only after STARTTLS (implied by --implicit-tls)")
    parser.add_argument("--require-starttls", action="store_true",
                        help="reply 530 to every command except EHLO, NOOP, STARTTLS and QUIT until STARTTLS")
    args = parser.parse_args(argv)

    if args.port != 0 and not 1024 <= args.port <= 65535:
        parser.error(f"invalid --port {args.port}: expected 0 or an unprivileged port (1024-65535)")
    uses_tls = args.starttls or args.implicit_tls
    if uses_tls and not (args.cert and args.key):
        parser.error("--starttls and --implicit-tls need --cert and --key")
    if not uses_tls and (args.cert or args.key):
        parser.error("--cert and --key need --starttls or --implicit-tls")
    if bool(args.auth_user) != bool(args.auth_password_file):
        parser.error("--auth-user and --auth-password-file must be given together")
    if args.require_auth and not args.auth_user:
        parser.error("--require-auth needs --auth-user and --auth-password-file")
    if args.auth_require_tls and not uses_tls:
        parser.error("--auth-require-tls needs --starttls or --implicit-tls, or AUTH could never succeed")
    if args.require_starttls and not args.starttls:
        parser.error("--require-starttls needs --starttls")
    for option, path in (("--cert", args.cert), ("--key", args.key), ("--auth-password-file", args.auth_password_file)):
        if path and not os.path.isfile(path):
            parser.error(f"{option} file not found: {path}")
    return args


def read_password(path):
    with open(path, "rb") as file:
        password = file.read()
    if password.endswith(b"\r\n"):
        return password[:-2]
    if password.endswith(b"\n"):
        return password[:-1]
    return password


def make_tls_context(cert, key):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile=cert, keyfile=key)
    return context


class MaildirHandler:
    """Handler that saves each message into a Maildir."""

    def __init__(self, maildir, offers_auth):
        self.maildir = maildir
        self.offers_auth = offers_auth
        self.delivery_count = 0
        for subdirectory in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(maildir, subdirectory), exist_ok=True)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # With this hook installed, aiosmtpd leaves recording the client's name to the hook.
        session.host_name = hostname
        if self.offers_auth:
            return responses
        return [line for line in responses if not line[4:].startswith("AUTH")]

    async def handle_DATA(self, server, session, envelope):
        header = f"X-MailFrom: {envelope.mail_from}\r\n"
        header += f"X-RcptTo: {', '.join(envelope.rcpt_tos)}\r\n"
        if session.authenticated and isinstance(session.auth_data, LoginPassword):
            login = session.auth_data.login.decode("utf-8", errors="replace")
            header += f"X-AuthLogin: {login}\r\n"

        self.delivery_count += 1
        name = f"{time.time_ns()}.P{os.getpid()}Q{self.delivery_count}.{socket.gethostname()}"
        temporary_path = os.path.join(self.maildir, "tmp", name)
        with open(temporary_path, "wb") as file:
            file.write(header.encode("utf-8"))
            file.write(envelope.original_content)
        os.rename(temporary_path, os.path.join(self.maildir, "new", name))
        log.info("saved message from %r to %r as new/%s", envelope.mail_from, envelope.rcpt_tos, name)
        return f"250 2.0.0 OK: saved as {name}"


def make_authenticator(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        if not isinstance(auth_data, LoginPassword):
            log.warning("AUTH %s rejected: the mechanism did not return a login and password", mechanism)
            return AuthResult(success=False, handled=False)
        # Both comparisons run, so that the time taken does not reveal which one failed.
        login_matches = hmac.compare_digest(auth_data.login, user)
        password_matches = hmac.compare_digest(auth_data.password, password)
        if login_matches and password_matches:
            log.info("AUTH %s succeeded for %r", mechanism, auth_data.login.decode("utf-8", errors="replace"))
            return AuthResult(success=True, auth_data=auth_data)
        log.warning("AUTH %s rejected for %r: invalid credentials", mechanism, auth_data.login.decode("utf-8", errors="replace"))
        return AuthResult(success=False, handled=False)

    return authenticate


class DropExpectedWarnings(logging.Filter):
    """Filter for two warnings that aiosmtpd 1.4 logs on every connection or AUTH.

    smtp_AUTH itself sets the deprecated Session.login_data. The other warning
    repeats, once per connection, a choice that the flags of this script made.
    """

    dropped_messages = (
        "login_data is deprecated",
        "auth_required == True but auth_require_tls == False",
    )

    def filter(self, record):
        message = record.getMessage()
        return not any(dropped in message for dropped in self.dropped_messages)


async def serve(args):
    handler = MaildirHandler(args.maildir, offers_auth=bool(args.auth_user))
    authenticator = None
    if args.auth_user:
        authenticator = make_authenticator(args.auth_user.encode("utf-8"), read_password(args.auth_password_file))

    tls_context = None
    if args.starttls or args.implicit_tls:
        tls_context = make_tls_context(args.cert, args.key)

    # NOTE: aiosmtpd 1.4.3 counts only STARTTLS as TLS for auth_require_tls, so with
    # implicit TLS it would hide AUTH and reply 538. Every byte on an implicit-TLS
    # listener is encrypted, so AUTH is allowed there without that check.
    auth_require_tls = args.auth_require_tls and args.starttls
    loop = asyncio.get_running_loop()

    def make_protocol():
        return SMTP(
            handler,
            hostname=SERVER_HOSTNAME,
            tls_context=tls_context if args.starttls else None,
            require_starttls=args.require_starttls,
            auth_required=args.require_auth,
            auth_require_tls=auth_require_tls,
            # Without --auth-user no mechanism is left, so AUTH gets 504 and EHLO hides it.
            auth_exclude_mechanism=None if args.auth_user else ["PLAIN", "LOGIN"],
            authenticator=authenticator,
            loop=loop,
        )

    server = await loop.create_server(
        make_protocol,
        host="127.0.0.1",
        port=args.port,
        ssl=tls_context if args.implicit_tls else None,
    )
    port = server.sockets[0].getsockname()[1]

    stop_requested = asyncio.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, stop_requested.set)

    if args.starttls:
        mode = "STARTTLS"
    elif args.implicit_tls:
        mode = "implicit TLS"
    else:
        mode = "no TLS"
    log.info("listening on 127.0.0.1:%d with %s, AUTH %s, maildir %s", port, mode,
             "for " + repr(args.auth_user) if args.auth_user else "off", args.maildir)
    print(f"ready {port}", flush=True)

    await stop_requested.wait()
    log.info("stopping on signal")
    server.close()
    await server.wait_closed()
    log.info("stopped")


def main(argv):
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("mail.log").addFilter(DropExpectedWarnings())
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")

    # A parent can start this process with SIGTERM blocked (Foundation's Process on
    # Linux copies the signal mask of a Dispatch thread), and a blocked signal would
    # never reach the handler that stops the server.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})

    try:
        asyncio.run(serve(args))
    except (OSError, ssl.SSLError) as error:
        log.error("failed to start: %s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
