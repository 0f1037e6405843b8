"""The alternative a user would write: recycle the Exchange pools on every
server of a lab with pywinrm and a thread pool. Run by scripts/bench.sh
against the same lab as revoke; nothing here is asserted by a test.

usage: bench_pywinrm.py CONFIG THREADS   (password in $REVOKE_PASSWORD)

CONFIG is the revoke.toml that `revoke lab --write-config` wrote (its
servers and [winrm] user). THREADS is the pool size; 0 means one thread per
server. Prints one JSON line: servers, ok, failed, the first error.
"""

import json
import os
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor

import winrm

POOLS = [
    "MSExchangeSyncAppPool",
    "MSExchangeServicesAppPool",
    "MSExchangeOWAAppPool",
    "MSExchangeRPCProxyFrontEndAppPool",
    "MSExchangeMAPIFrontEndAppPool",
]
APPCMD = r"%windir%\system32\inetsrv\appcmd.exe"


def servers_of(config):
    entries = config.get("servers", [])
    return [e if isinstance(e, str) else f"{e['host']}:{e['port']}" for e in entries]


def recycle(address, user, password):
    """What an admin's script does: one command per pool, the default
    transport for Windows' listener (NTLM, sealed over HTTP)."""
    session = winrm.Session(
        f"http://{address}/wsman",
        auth=(user, password),
        transport="ntlm",
        message_encryption="always",
    )
    for pool in POOLS:
        result = session.run_cmd(APPCMD, ["recycle", "apppool", f"/apppool.name:{pool}"])
        if result.status_code != 0:
            raise RuntimeError(f"{address} {pool}: exit {result.status_code}")


def main():
    config_path, threads = sys.argv[1], int(sys.argv[2])
    with open(config_path, "rb") as f:
        config = tomllib.load(f)
    user = config["winrm"]["user"]
    password = os.environ["REVOKE_PASSWORD"]
    servers = servers_of(config)
    workers = threads if threads > 0 else len(servers)
    ok, errors = 0, []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(recycle, s, user, password) for s in servers]
        for future in futures:
            try:
                future.result()
                ok += 1
            except Exception as e:  # one server's failure is counted, not fatal
                errors.append(str(e))
    print(json.dumps({
        "servers": len(servers),
        "ok": ok,
        "failed": len(errors),
        "first_error": errors[0] if errors else None,
    }))


if __name__ == "__main__":
    main()
