"""Drive a lab server with pywinrm, an independent WinRM client.

Called by tests/it/lab_fidelity.rs. Reads a JSON request from argv[1]:

    {"endpoint": "http://127.0.0.1:PORT/wsman", "transport": "ntlm" | "basic",
     "username": "LAB\\revoke-admin", "message_encryption": "always" | "auto" | "never",
     "server_cert_validation": "validate" | "ignore", "ca_trust_path": "/path" | null,
     "operation_timeout_sec": 20, "read_timeout_sec": 30,
     "commands": [["program", ["arg", ...]], ...],
     "timeout_probe": false, "wrong_password": true}

The password comes from the environment (PROBE_PASSWORD), never argv, and is
never printed. Prints one JSON object on stdout:

    {"results": [{"stdout": "...", "stderr": "...", "status_code": 0}, ...],
     "timeouts_seen": 0, "wrong_password": "refused" | "accepted" | "<other error>"}
"""

import json
import os
import sys

import winrm
from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError


def session(req, password):
    kwargs = {
        "transport": req["transport"],
        "message_encryption": req.get("message_encryption", "auto"),
        "server_cert_validation": req.get("server_cert_validation", "validate"),
        "operation_timeout_sec": req.get("operation_timeout_sec", 20),
        "read_timeout_sec": req.get("read_timeout_sec", 30),
    }
    if req.get("ca_trust_path"):
        kwargs["ca_trust_path"] = req["ca_trust_path"]
    return winrm.Session(req["endpoint"], auth=(req["username"], password), **kwargs)


def decode(data):
    return data.decode("utf-8", errors="replace")


def run_with_timeout_probe(s, program, args):
    """Like Session.run_cmd, but makes one Receive on its own first so the
    caller can see the TimeoutFault a long command produces."""
    p = s.protocol
    shell_id = p.open_shell()
    command_id = p.run_command(shell_id, program, args)
    timeouts = 0
    stdout, stderr, code, done = b"", b"", -1, False
    try:
        stdout, stderr, code, done = p.get_command_output_raw(shell_id, command_id)
    except WinRMOperationTimeoutError:
        timeouts += 1
    if not done:
        more_out, more_err, code = p.get_command_output(shell_id, command_id)
        stdout += more_out
        stderr += more_err
    p.cleanup_command(shell_id, command_id)
    p.close_shell(shell_id)
    return stdout, stderr, code, timeouts


def main():
    req = json.loads(sys.argv[1])
    password = os.environ["PROBE_PASSWORD"]
    out = {"results": [], "timeouts_seen": 0}

    s = session(req, password)
    for program, args in req["commands"]:
        if req.get("timeout_probe"):
            stdout, stderr, code, timeouts = run_with_timeout_probe(s, program, args)
            out["timeouts_seen"] += timeouts
        else:
            r = s.run_cmd(program, args)
            stdout, stderr, code = r.std_out, r.std_err, r.status_code
        out["results"].append({"stdout": decode(stdout), "stderr": decode(stderr), "status_code": code})

    if req.get("wrong_password"):
        bad = session(req, password + "-wrong")
        try:
            bad.run_cmd("hostname")
            out["wrong_password"] = "accepted"
        except InvalidCredentialsError:
            out["wrong_password"] = "refused"
        except Exception as e:  # reported, not hidden: the test names it
            out["wrong_password"] = "%s: %s" % (type(e).__name__, e)

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
