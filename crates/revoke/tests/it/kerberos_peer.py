"""An independent Kerberos WinRM client: pywinrm's transport='kerberos'
(SPNEGO/Kerberos through python-gssapi and MIT krb5, mutual authentication
required) with every message sealed, as the lab's Kerberos endpoint must
accept it.

    python kerberos_peer.py ENDPOINT [--hostname-override HOST]

ENDPOINT is e.g. http://ex01.lab.example.test:PORT/wsman; the ticket is asked
for HTTP/<its host> (or HTTP/HOST). Credentials come only from the
environment: KRB5_CONFIG (the test domain's krb5.conf) and KRB5CCNAME (a
ticket cache made by kinit); pywinrm's Kerberos transport takes no password.

Runs `%windir%\\system32\\inetsrv\\appcmd.exe list apppool` as the NTLM peer
(tests/pywinrm_probe.py) does, through Session.run_cmd. Prints the command's
stdout on stdout and its stderr on stderr, and exits with its exit code.
When the client itself fails (nothing listening, no ticket, the server
refused the ticket or could not prove itself, no sealing) it prints one
line "kerberos_peer: <error class>: <message>" on stderr and exits 125.
"""

import argparse
import sys

APPCMD = r"%windir%\system32\inetsrv\appcmd.exe"
PEER_FAILED = 125


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint")
    parser.add_argument("--hostname-override", default=None)
    args = parser.parse_args()

    try:
        import winrm

        session = winrm.Session(
            args.endpoint,
            # No principal, no password: the default principal of KRB5CCNAME.
            auth=(None, None),
            transport="kerberos",
            message_encryption="always",
            server_cert_validation="ignore",
            kerberos_hostname_override=args.hostname_override,
            operation_timeout_sec=20,
            read_timeout_sec=30,
        )
        result = session.run_cmd(APPCMD, ["list", "apppool"])
    except Exception as e:  # noqa: BLE001 - every client failure is reported the same way
        message = " ".join(str(e).split())
        print(f"kerberos_peer: {type(e).__name__}: {message}", file=sys.stderr)
        return PEER_FAILED

    sys.stdout.write(result.std_out.decode("utf-8", errors="replace"))
    sys.stderr.write(result.std_err.decode("utf-8", errors="replace"))
    return result.status_code


if __name__ == "__main__":
    sys.exit(main())
