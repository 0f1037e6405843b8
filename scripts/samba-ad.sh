#!/usr/bin/env bash
# A real Samba AD domain with two writable DCs and a read-only DC on
# loopback, for integration tests: DC1 on 127.0.0.1, DC2 on 127.0.0.2, RODC1
# on 127.0.0.3, realm LAB.EXAMPLE.TEST.
#
#   scripts/samba-ad.sh up DIR     install packages if missing, create (or
#                                  restart) the domain under DIR, write DIR/env
#   scripts/samba-ad.sh down DIR   stop every DC (safe to repeat)
#   scripts/samba-ad.sh sync DIR [DN]
#                                  pull DC1's changes into DC2 now: the
#                                  configuration and domain NCs, or one object
#   scripts/samba-ad.sh sync-rodc DIR [DN]
#                                  the same into the read-only DC
#   scripts/samba-ad.sh rodc-cache DIR USER...
#                                  let the RODC cache these users' passwords
#                                  (Allowed RODC Password Replication Group)
#                                  and give them to it now (rodc preload)
#   scripts/samba-ad.sh autorepl DIR on|off
#                                  let DC2 replicate from DC1 by itself (or not)
#
# Needs root. Everything lives under DIR; outside it the script only installs
# Debian packages, adds 127.0.0.2 and 127.0.0.3 to lo and marked lines to
# /etc/hosts (the three DCs, and ex01..ex16 on 127.0.0.1 for Kerberos).
# Kerberos: DIR/krb5.conf, DIR/lab.keytab (HTTP/exNN.lab.example.test of the
# service account exsvc) and DIR/wrong.keytab (same names, wrong keys).
# Passwords are generated, written to DIR/env (mode 0600) and never printed.
# See docs/samba-ad.md.
set -euo pipefail

REALM=LAB.EXAMPLE.TEST
DNS_DOMAIN=lab.example.test
DOMAIN=LAB
BASE_DN=DC=lab,DC=example,DC=test
CONFIG_DN=CN=Configuration,$BASE_DN
SCHEMA_DN=CN=Schema,$CONFIG_DN
PACKAGES=(samba samba-ad-dc samba-ad-provision samba-dsdb-modules winbind krb5-user ldap-utils ldb-tools iproute2 openssl)
HOSTS_MARK="# samba-ad.sh test domain"
WAIT_SECONDS=${SAMBA_AD_WAIT_SECONDS:-120}

log() { printf '[samba-ad %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

usage() {
    echo "usage: $0 up|down DIR | sync|sync-rodc DIR [DN] | rodc-cache DIR USER... | autorepl DIR on|off" >&2
    exit 2
}

# ---------------------------------------------------------------- packages

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        log "packages already installed"
        return
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # krb5-config asks for a realm and servers when it is installed: answer.
    debconf-set-selections <<EOF
krb5-config krb5-config/default_realm string $REALM
krb5-config krb5-config/kerberos_servers string dc1.$DNS_DOMAIN
krb5-config krb5-config/admin_server string dc1.$DNS_DOMAIN
krb5-config krb5-config/add_servers_realm string $REALM
krb5-config krb5-config/add_servers boolean false
krb5-config krb5-config/read_conf boolean true
EOF
    # Package scripts must not start the system-wide smbd/nmbd/samba-ad-dc:
    # they would take the ports on every address. Docker-style images already
    # ship a policy-rc.d that says no; add one for the install if absent.
    local policy=/usr/sbin/policy-rc.d added_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 755 "$policy"
        added_policy=1
    fi
    local rc=0
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
        >"$TMPLOG" 2>&1 || rc=$?
    [ -n "$added_policy" ] && rm -f "$policy"
    if [ $rc -ne 0 ]; then
        tail -n 30 "$TMPLOG" >&2
        die "apt-get failed (exit $rc)"
    fi
    # Debian enables the system-wide services; they are not ours to run.
    local svc
    for svc in smbd nmbd winbind samba-ad-dc; do
        if [ -x "/etc/init.d/$svc" ] && "/etc/init.d/$svc" status >/dev/null 2>&1; then
            log "note: system service $svc is running; it may hold the DC ports"
        fi
    done
}

# ---------------------------------------------------------------- network

# DC n's host name: dc1, dc2, and rodc1 for the read-only DC (n = 3).
dc_name() { if [ "$1" = 3 ]; then echo rodc1; else echo "dc$1"; fi; }

ensure_network() {
    local n re name
    local addresses
    # Read first: grep -q exiting early would SIGPIPE ip (and pipefail).
    addresses=$(ip -4 addr show dev lo)
    for n in 2 3; do
        if ! grep -qw "inet 127\\.0\\.0\\.$n" <<<"$addresses"; then
            log "adding 127.0.0.$n/8 to lo"
            ip addr add "127.0.0.$n/8" dev lo
        fi
    done
    for n in 1 2 3; do
        name=$(dc_name "$n")
        re="^127\\.0\\.0\\.$n[[:space:]]+(.*[[:space:]])?$name\\.${DNS_DOMAIN//./\\.}([[:space:]]|\$)"
        if ! grep -Eq "$re" /etc/hosts; then
            log "adding $name.$DNS_DOMAIN to /etc/hosts"
            printf '127.0.0.%s\t%s.%s %s %s\n' "$n" "$name" "$DNS_DOMAIN" "$name" "$HOSTS_MARK" >>/etc/hosts
        fi
    done
}

# Both DCs use the fixed addresses 127.0.0.1 and 127.0.0.2, so one domain
# runs per machine. If something already listens on their LDAP ports, a new
# DC could not bind and wait_ldaps might even reach the other one: fail now.
check_ports_free() {
    local busy
    busy=$(ss -Htln 2>/dev/null | awk '{print $4}' |
        grep -E '^(127\.0\.0\.[123]|0\.0\.0\.0|\*|\[::\]):(88|389|445|636|3268|3269)$' || true)
    [ -z "$busy" ] || die "already listening: $(echo $busy) (another samba-ad.sh domain? run '$0 down' on its DIR)"
}

# ---------------------------------------------------------------- secrets

gen_password() {
    # Upper, lower, digit and a symbol; nothing a shell or an LDIF quotes.
    printf 'Rv%s.Lab9' "$(openssl rand -hex 8)"
}

# ---------------------------------------------------------------- TLS

# Samba's self-generated certificate has neither subjectAltName nor an IP
# address: OpenLDAP clients reject ldaps://127.0.0.1 with it ("hostname does
# not match common name") and rustls/webpki rejects it outright. So make one
# CA and a certificate per DC with DNS and IP SANs, placed where Samba looks
# for them (private/tls/{key,cert,ca}.pem); Samba then generates nothing.
make_ca() {
    local tls=$DIR/tls
    mkdir -p "$tls"
    chmod 700 "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -keyout "$tls/ca.key" -out "$tls/ca.pem" \
        -subj "/O=revoke test lab/CN=revoke test lab Samba AD CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" >"$TMPLOG" 2>&1 || { cat "$TMPLOG" >&2; die "CA creation failed"; }
}

install_dc_cert() { # n targetdir
    local n=$1 target=$2 tls=$DIR/tls name
    name=$(dc_name "$n")
    local ext=$tls/$name.ext
    printf '%s\n' \
        "subjectAltName=DNS:$name.$DNS_DOMAIN,DNS:$name,IP:127.0.0.$n" \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" \
        "authorityKeyIdentifier=keyid" \
        "subjectKeyIdentifier=hash" >"$ext"
    openssl req -new -newkey rsa:2048 -nodes -sha256 \
        -keyout "$tls/$name.key" -out "$tls/$name.csr" \
        -subj "/O=revoke test lab/CN=$name.$DNS_DOMAIN" >"$TMPLOG" 2>&1 &&
        openssl x509 -req -sha256 -days 825 -in "$tls/$name.csr" \
            -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
            -extfile "$ext" -out "$tls/$name.pem" >>"$TMPLOG" 2>&1 ||
        { cat "$TMPLOG" >&2; die "certificate for $name failed"; }
    mkdir -p "$target/private/tls"
    install -m 600 "$tls/$name.key" "$target/private/tls/key.pem"
    install -m 644 "$tls/$name.pem" "$target/private/tls/cert.pem"
    install -m 644 "$tls/ca.pem" "$target/private/tls/ca.pem"
}

# ---------------------------------------------------------------- DCs

dc_options() { # n -> --option arguments shared by provision and join
    local n=$1 t=$DIR/dc$1
    printf '%s\n' \
        "--option=interfaces=127.0.0.$n" \
        "--option=bind interfaces only=yes" \
        "--option=pid directory=$t/run" \
        "--option=winbindd socket directory=$t/run/winbindd" \
        "--option=ntp signd socket directory=$t/run/ntp_signd" \
        "--option=log file=$t/log/samba.log" \
        "--option=dsdb:schema update allowed=true" \
        "--option=$SASL_OVER_TLS"
}

# Like AD: a SASL (Kerberos) bind inside TLS needs no SASL signing or
# sealing on top (Samba's default, "yes", refuses such binds altogether);
# outside TLS, SASL binds still need them and simple binds still need TLS.
SASL_OVER_TLS="ldap server require strong auth = allow_sasl_over_tls"

# Domains made before that option: it goes into [global] before samba starts.
ensure_sasl_over_tls() { # smb.conf
    grep -qi '^[[:space:]]*ldap server require strong auth' "$1" && return 0
    sed -i "/^\[global\]/a $SASL_OVER_TLS" "$1"
}

# Samba rewrites its command line ("samba: root process"), so a DC is
# recognised by process name and working directory: start_dc runs it in
# DIR/dcN, which no other process of ours uses.
pid_is_ours() { # pid n
    [ -n "$1" ] && [ -r "/proc/$1/comm" ] || return 1
    [ "$(readlink "/proc/$1/cwd" 2>/dev/null)" = "$DIR/dc$2" ]
}

dc_running() { # n -> 0 if our recorded samba for DC n is alive
    local pidfile=$DIR/dc$1.pid
    [ -f "$pidfile" ] || return 1
    pid_is_ours "$(cat "$pidfile")" "$1" && [ "$(cat "/proc/$(cat "$pidfile")/comm")" = samba ]
}

start_dc() { # n
    local n=$1 t=$DIR/dc$1
    ensure_sasl_over_tls "$t/etc/smb.conf"
    mkdir -p "$t/run" "$t/log"
    # setsid: its own session, so the DC outlives this script and a Ctrl-C
    # in the caller's terminal does not reach it.
    (cd "$t" && exec setsid samba --foreground --no-process-group -s "$t/etc/smb.conf" \
        >"$t/log/samba.out" 2>&1 </dev/null) &
    echo $! >"$DIR/dc$n.pid"
    log "$(dc_name "$n") started (pid $!)"
}

log_tail() { # n
    local t=$DIR/dc$1 f
    for f in "$t/log/samba.out" "$t/log/samba.log"; do
        [ -s "$f" ] && { echo "--- tail of $f" >&2; tail -n 25 "$f" >&2; }
    done
    return 0
}

wait_ldaps() { # n
    local n=$1 deadline=$((SECONDS + WAIT_SECONDS))
    local pid
    pid=$(cat "$DIR/dc$n.pid")
    while :; do
        # Just started: the recorded pid may still be the subshell that is
        # about to exec samba (another name, another cwd), so only "gone"
        # counts here, not dc_running's stricter check.
        if ! kill -0 "$pid" 2>/dev/null; then
            log_tail "$n"
            die "$(dc_name "$n") exited before LDAPS answered"
        fi
        if LDAPTLS_CACERT=$DIR/tls/ca.pem ldapsearch -o nettimeout=3 -LLL -x \
            -H "ldaps://127.0.0.$n" -b '' -s base dsServiceName >/dev/null 2>&1; then
            return 0
        fi
        if [ $SECONDS -ge $deadline ]; then
            log_tail "$n"
            die "$(dc_name "$n"): no LDAPS answer on 127.0.0.$n:636 within ${WAIT_SECONDS}s"
        fi
        sleep 0.5
    done
}

provision_dc1() {
    local t=$DIR/dc1 opts
    mapfile -t opts < <(dc_options 1)
    mkdir -p "$t/run" "$t/log"
    samba-tool domain provision --targetdir="$t" --realm="$REALM" --domain="$DOMAIN" \
        --server-role=dc --dns-backend=NONE --host-name=dc1 \
        --adminpass="$ADMIN_PW" "${opts[@]}" >"$t/log/provision.log" 2>&1 </dev/null ||
        { tail -n 30 "$t/log/provision.log" >&2; die "provision of dc1 failed"; }
}

join_dc2() {
    local t=$DIR/dc2 opts
    mapfile -t opts < <(dc_options 2)
    mkdir -p "$t/run" "$t/log"
    PASSWD=$ADMIN_PW samba-tool domain join "$DNS_DOMAIN" DC --server=127.0.0.1 \
        --targetdir="$t" --dns-backend=NONE -U Administrator --use-kerberos=off \
        "--option=netbios name=DC2" "${opts[@]}" >"$t/log/join.log" 2>&1 </dev/null ||
        { tail -n 30 "$t/log/join.log" >&2; die "join of dc2 failed"; }
}

# A read-only DC. Like DC2 it cannot replicate by itself (no DNS): it has
# what the join copied, then what sync-rodc pulls. It verifies the passwords
# it caches and no others (Samba forwards no simple bind, see
# docs/samba-ad.md), so revoke-op, the operator the tests bind as, is cached.
join_rodc() {
    local t=$DIR/dc3 opts
    mapfile -t opts < <(dc_options 3)
    mkdir -p "$t/run" "$t/log"
    PASSWD=$ADMIN_PW samba-tool domain join "$DNS_DOMAIN" RODC --server=127.0.0.1 \
        --targetdir="$t" --dns-backend=NONE -U Administrator --use-kerberos=off \
        "--option=netbios name=RODC1" "${opts[@]}" >"$t/log/join.log" 2>&1 </dev/null ||
        { tail -n 30 "$t/log/join.log" >&2; die "join of rodc1 failed"; }
}

# Users whose passwords the RODC may hold, given to it now.
rodc_cache() { # user...
    local users
    users=$(IFS=,; echo "$*")
    PASSWD=$ADMIN_PW samba-tool group addmembers "Allowed RODC Password Replication Group" "$users" \
        -H ldap://127.0.0.1 -U Administrator --use-kerberos=off >"$TMPLOG" 2>&1 </dev/null ||
        { cat "$TMPLOG" >&2; die "adding $users to the Allowed RODC Password Replication Group failed"; }
    PASSWD=$ADMIN_PW samba-tool rodc preload "$@" --server=127.0.0.1 -s "$DIR/dc3/etc/smb.conf" \
        -U Administrator --use-kerberos=off >>"$TMPLOG" 2>&1 </dev/null ||
        { cat "$TMPLOG" >&2; die "rodc preload of $users failed"; }
}

add_rodc() {
    log "joining rodc1 (read-only)"
    join_rodc
    install_dc_cert 3 "$DIR/dc3"
    start_dc 3
    wait_ldaps 3
    rodc_cache revoke-op
    check_bind 3 revoke-op || die "revoke-op cannot bind on rodc1 after preload"
}

# ---------------------------------------------------------------- LDAP helpers

# samba-tool calls use NTLM (--use-kerberos=off): with Kerberos allowed each
# call first spends ~5 s on failing KDC/DNS lookups (no DNS here).

# ldapmodify/ldapadd as Administrator over LDAPS against DC n; LDIF on stdin.
# The password comes from a 0600 file (-y), never from the command line.
ldap_admin() { # n ldapmodify-args...
    local n=$1
    shift
    LDAPTLS_CACERT=$DIR/tls/ca.pem ldapmodify -x -H "ldaps://127.0.0.$n" \
        -D "Administrator@$DNS_DOMAIN" -y "$DIR/secrets/admin.pw" "$@"
}

ldap_search_admin() { # n ldapsearch-args...
    local n=$1
    shift
    LDAPTLS_CACERT=$DIR/tls/ca.pem ldapsearch -LLL -o ldif-wrap=no -x -H "ldaps://127.0.0.$n" \
        -D "Administrator@$DNS_DOMAIN" -y "$DIR/secrets/admin.pw" "$@"
}

unicode_pwd() { # password -> base64 of "password" in UTF-16LE
    printf '"%s"' "$1" | iconv -f UTF-8 -t UTF-16LE | base64 -w0
}

# ldb tools wrap long LDIF lines at 78 columns; join the continuations.
ldif_unwrap() { awk '/^ / { l = l substr($0, 2); next } { if (NR > 1) print l; l = $0 } END { print l }'; }

sid_of() { # DN -> objectSid as S-1-5-...; ldb tools print SIDs as strings
    ldbsearch -H "$DIR/dc1/private/sam.ldb" -b "$1" -s base objectSid 2>/dev/null | ldif_unwrap |
        sed -n 's/^objectSid: //p'
}

# ---------------------------------------------------------------- seed

user_ldif() { # sam cn ou-dn displayName mail [extra lines...]
    local sam=$1 cn=$2 parent=$3 display=$4 mail=$5
    shift 5
    printf 'dn: CN=%s,%s\nchangetype: add\nobjectClass: user\nsAMAccountName: %s\n' "$cn" "$parent" "$sam"
    printf 'userPrincipalName: %s@%s\n' "$sam" "$DNS_DOMAIN"
    [ -n "$display" ] && printf 'displayName: %s\n' "$display"
    [ -n "$mail" ] && printf 'mail: %s\n' "$mail"
    printf 'unicodePwd:: %s\nuserAccountControl: 512\n' "$USER_PWD_B64"
    local line
    for line in "$@"; do printf '%s\n' "$line"; done
    printf '\n'
}

seed() {
    local staff="OU=Staff,$BASE_DN" users="CN=Users,$BASE_DN"
    USER_PWD_B64=$(unicode_pwd "$USER_PW")
    {
        printf 'dn: %s\nchangetype: add\nobjectClass: organizationalUnit\nou: Staff\ndescription: test users revoke may act on (revoke-op has delegated rights here)\n\n' "$staff"
        user_ldif alice "Alice Example" "$staff" "Alice Example" "alice@$DNS_DOMAIN" \
            "givenName: Alice" "sn: Example"
        user_ldif bob "Bob Example" "$staff" "Bob Example" "bob@$DNS_DOMAIN" \
            "givenName: Bob" "sn: Example"
        user_ldif carol1 "carol1" "$staff" "Carol Example" "carol@$DNS_DOMAIN"
        user_ldif carol2 "carol2" "$staff" "Carol Example" "carol@$DNS_DOMAIN"
        user_ldif admin-alice "admin-alice" "$staff" "Alice Example (admin)" "" "adminCount: 1"
        user_ldif nested-admin "nested-admin" "$staff" "Nested Admin" ""
        user_ldif revoke-op "revoke-op" "$users" "revoke operator" "" \
            "description: the account revoke binds as; delegated rights on OU=Staff only"
        # Not users, all named alice-*.
        printf 'dn: CN=alice-pc,%s\nchangetype: add\nobjectClass: computer\nsAMAccountName: alice-pc$\nuserAccountControl: 4096\n\n' "$staff"
        printf 'dn: CN=alice-team,%s\nchangetype: add\nobjectClass: group\nsAMAccountName: alice-team\nmail: alice-team@%s\nmember: CN=Alice Example,%s\n\n' "$staff" "$DNS_DOMAIN" "$staff"
        printf 'dn: CN=alice-contact,%s\nchangetype: add\nobjectClass: contact\ndisplayName: Alice Example (partner)\nmail: alice@partner.example.test\n\n' "$staff"
        # Protected accounts: admin-alice directly, nested-admin via Tier0.
        printf 'dn: CN=Tier0,%s\nchangetype: add\nobjectClass: group\nsAMAccountName: Tier0\nmember: CN=nested-admin,%s\n\n' "$users" "$staff"
        printf 'dn: CN=Domain Admins,%s\nchangetype: modify\nadd: member\nmember: CN=admin-alice,%s\nmember: CN=Tier0,%s\n-\n\n' "$users" "$staff" "$users"
    } >"$DIR/seed/seed.ldif"
    ldap_admin 1 -f "$DIR/seed/seed.ldif" >"$DIR/seed/seed.log" 2>&1 ||
        { tail -n 20 "$DIR/seed/seed.log" >&2; die "seeding users failed"; }

    # Delegation: revoke-op may reset passwords and write the account-state
    # attributes of user objects below OU=Staff, nothing else.
    local sid
    sid=$(sid_of "CN=revoke-op,$users")
    [ -n "$sid" ] || die "no objectSid for revoke-op"
    local user_class=bf967aba-0de6-11d0-a285-00aa003049e2
    local sddl=""
    sddl+="(OA;CIIO;CR;00299570-246d-11d0-a768-00aa006e0529;$user_class;$sid)" # User-Force-Change-Password
    sddl+="(OA;CIIO;WP;bf967a68-0de6-11d0-a285-00aa003049e2;$user_class;$sid)" # userAccountControl
    sddl+="(OA;CIIO;WP;bf967a0a-0de6-11d0-a285-00aa003049e2;$user_class;$sid)" # pwdLastSet
    sddl+="(OA;CIIO;WP;28630ebf-41d5-11d1-a9c1-0000f80367c1;$user_class;$sid)" # lockoutTime
    sddl+="(OA;CIIO;WP;bf96793e-0de6-11d0-a285-00aa003049e2;$user_class;$sid)" # info ([directory] stamp)
    PASSWD=$ADMIN_PW samba-tool dsacl set -H ldap://127.0.0.1 -U Administrator --use-kerberos=off \
        --objectdn="$staff" --sddl="$sddl" >"$DIR/seed/dsacl.log" 2>&1 </dev/null ||
        { tail -n 20 "$DIR/seed/dsacl.log" >&2; die "dsacl set on OU=Staff failed"; }

    # Prove the delegation: revoke-op disables and re-enables carol2.
    local f
    for f in 514 512; do
        printf 'dn: CN=carol2,%s\nchangetype: modify\nreplace: userAccountControl\nuserAccountControl: %s\n-\n' "$staff" "$f" |
            LDAPTLS_CACERT=$DIR/tls/ca.pem ldapmodify -x -H ldaps://127.0.0.1 \
                -D "revoke-op@$DNS_DOMAIN" -y "$DIR/secrets/user.pw" >>"$DIR/seed/delegation-check.log" 2>&1 ||
            { tail -n 20 "$DIR/seed/delegation-check.log" >&2; die "revoke-op could not write userAccountControl under OU=Staff"; }
    done
}

# ---------------------------------------------------------------- Exchange

exchange_schema() {
    # Test-only OIDs under 1.3.6.1.4.1.99999 (not Microsoft's). networkAddress
    # and serialNumber are already in Samba's AD schema; reuse them. The
    # class needs a defaultSecurityDescriptor granting Authenticated Users
    # read (as server's does): without one only admins see the objects.
    local have
    have=$(ldap_search_admin 1 -b "$SCHEMA_DN" '(lDAPDisplayName=networkAddress)' lDAPDisplayName | grep -c '^lDAPDisplayName' || true)
    [ "$have" = 1 ] || die "networkAddress missing from the schema"
    {
        cat <<EOF
dn: CN=ms-Exch-Current-Server-Roles,$SCHEMA_DN
changetype: add
objectClass: attributeSchema
cn: ms-Exch-Current-Server-Roles
lDAPDisplayName: msExchCurrentServerRoles
adminDisplayName: ms-Exch-Current-Server-Roles
adminDescription: TEST-ONLY stand-in for the Exchange attribute (private OID)
attributeID: 1.3.6.1.4.1.99999.1.1
attributeSyntax: 2.5.5.9
oMSyntax: 2
isSingleValued: TRUE
searchFlags: 0

dn: CN=ms-Exch-Exchange-Server,$SCHEMA_DN
changetype: add
objectClass: classSchema
cn: ms-Exch-Exchange-Server
lDAPDisplayName: msExchExchangeServer
adminDisplayName: ms-Exch-Exchange-Server
adminDescription: TEST-ONLY stand-in for the Exchange class (private OID)
governsID: 1.3.6.1.4.1.99999.2.1
subClassOf: server
objectClassCategory: 1
rDNAttID: cn
possSuperiors: container
mayContain: msExchCurrentServerRoles
mayContain: networkAddress
mayContain: serialNumber
defaultObjectCategory: CN=ms-Exch-Exchange-Server,$SCHEMA_DN
defaultHidingValue: TRUE
systemOnly: FALSE
defaultSecurityDescriptor: D:(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;DA)(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;SY)(A;;RPLCLORC;;;AU)

EOF
    } >"$DIR/seed/schema.ldif"
    ldap_admin 1 -f "$DIR/seed/schema.ldif" >"$DIR/seed/schema.log" 2>&1 ||
        { tail -n 20 "$DIR/seed/schema.log" >&2; die "schema extension failed"; }
    printf 'dn:\nchangetype: modify\nadd: schemaUpdateNow\nschemaUpdateNow: 1\n-\n' |
        ldap_admin 1 >>"$DIR/seed/schema.log" 2>&1 ||
        { tail -n 20 "$DIR/seed/schema.log" >&2; die "schemaUpdateNow failed"; }
}

exchange_server_ldif() { # name roles version
    local name=$1 roles=$2 version=$3 lc
    lc=$(printf '%s' "$1" | tr 'A-Z' 'a-z')
    cat <<EOF
dn: CN=$name,$EX_SERVERS
changetype: add
objectClass: msExchExchangeServer
msExchCurrentServerRoles: $roles
serialNumber: $version
networkAddress: ncacn_vns_spp:$name
networkAddress: netbios:$name
networkAddress: ncacn_np:$name
networkAddress: ncacn_spx:$name
networkAddress: ncacn_ip_tcp:$lc.$DNS_DOMAIN
networkAddress: ncalrpc:$name

EOF
}

exchange_objects() {
    local ms="CN=Microsoft Exchange,CN=Services,$CONFIG_DN"
    local org="CN=Lab Org,$ms"
    local ags="CN=Administrative Groups,$org"
    local ag="CN=Exchange Administrative Group (FYDIBOHF23SPDLT),$ags"
    EX_SERVERS="CN=Servers,$ag"
    {
        printf 'dn: %s\nchangetype: add\nobjectClass: msExchConfigurationContainer\n\n' "$ms"
        local c
        for c in "$org" "$ags" "$ag" "$EX_SERVERS"; do
            printf 'dn: %s\nchangetype: add\nobjectClass: container\n\n' "$c"
        done
        exchange_server_ldif EX01 6 "Version 15.1 (Build 30225.42)"
        exchange_server_ldif EX02 4 "Version 15.2 (Build 1118.7)"
        # Exchange 2013 stand-alone Client Access: neither bit 2 nor 4.
        exchange_server_ldif EX03 16385 "Version 15.0 (Build 1497.2)"
        exchange_server_ldif EDGE01 64 "Version 15.1 (Build 2507.6)"
    } >"$DIR/seed/exchange.ldif"
    ldap_admin 1 -f "$DIR/seed/exchange.ldif" >"$DIR/seed/exchange.log" 2>&1 ||
        { tail -n 20 "$DIR/seed/exchange.log" >&2; die "creating Exchange objects failed"; }
}

# ---------------------------------------------------------------- replication

# 'samba-tool drs replicate --local' never passes schema=True to the
# replication code, so it cannot extend DC2's prefixMap: replicating a new
# attributeSchema/classSchema with an OID under a new arc fails with "Unable
# to convert 1.3.6.1.4.1.99999.1.1 to an attid, and can_change_pfm=false!".
# Hence the schema is added before the join and only the configuration and
# domain NCs are pulled here.
replicate_to_dc2() {
    local nc
    for nc in "$CONFIG_DN" "$BASE_DN"; do
        PASSWD=$ADMIN_PW samba-tool drs replicate dc2 dc1 "$nc" --local \
            -s "$DIR/dc2/etc/smb.conf" -U Administrator --use-kerberos=off >>"$DIR/seed/replicate.log" 2>&1 </dev/null ||
            { tail -n 20 "$DIR/seed/replicate.log" >&2; die "replicating $nc to dc2 failed"; }
    done
}

# A simple bind plus a rootDSE read. Not ldapwhoami: Samba does not
# implement the Who am I? extended operation, so ldapwhoami exits 2
# ("Extended Operation(1.3.6.1.4.1.4203.1.11.3) not supported") even after a
# successful bind.
check_bind() { # n user
    LDAPTLS_CACERT=$DIR/tls/ca.pem ldapsearch -LLL -x -H "ldaps://127.0.0.$1" \
        -D "$2@$DNS_DOMAIN" -y "$DIR/secrets/user.pw" -b '' -s base 1.1 >/dev/null 2>&1
}

# ---------------------------------------------------------------- Kerberos

# Lab WinRM servers accept Kerberos for HTTP/exNN.lab.example.test with the
# keys of one service account (docs/samba-ad.md "Kerberos"). Raise
# KRB_SETUP_VERSION when this section changes: the next 'up' on an existing
# domain then redoes it.
KRB_SETUP_VERSION=2
KRB_SERVICE=exsvc
KRB_HOSTS=16

krb_host() { printf 'ex%02d.%s' "$1" "$DNS_DOMAIN"; } # n -> ex01.lab.example.test

# Which ex hosts lack their /etc/hosts line (none: prints nothing).
missing_ex_hosts() {
    local n host re
    for n in $(seq 1 "$KRB_HOSTS"); do
        host=$(krb_host "$n")
        re="^127\\.0\\.0\\.1[[:space:]]+(.*[[:space:]])?${host//./\\.}([[:space:]]|\$)"
        grep -Eq "$re" /etc/hosts || echo "$host"
    done
}

kerberos_ready() {
    [ "$(cat "$DIR/.kerberos" 2>/dev/null)" = "$KRB_SETUP_VERSION" ] &&
        [ -s "$DIR/krb5.conf" ] && [ -s "$DIR/lab.keytab" ] && [ -s "$DIR/wrong.keytab" ] &&
        [ -z "$(missing_ex_hosts)" ]
}

write_krb5_conf() {
    # No DNS here: the KDC (DC1) is named, nothing is looked up or
    # canonicalised, so HTTP/ex01.lab.example.test is asked for as written.
    cat >"$DIR/krb5.conf.tmp" <<KRB
# Written by scripts/samba-ad.sh for the test domain: KRB5_CONFIG=$DIR/krb5.conf
[libdefaults]
    default_realm = $REALM
    dns_lookup_realm = false
    dns_lookup_kdc = false
    rdns = false
    dns_canonicalize_hostname = false

[realms]
    $REALM = {
        kdc = 127.0.0.1
        kpasswd_server = 127.0.0.1
    }

[domain_realm]
    .$DNS_DOMAIN = $REALM
    $DNS_DOMAIN = $REALM
KRB
    chmod 644 "$DIR/krb5.conf.tmp"
    mv "$DIR/krb5.conf.tmp" "$DIR/krb5.conf"
}

# The service account holding every HTTP/exNN SPN. AES only
# (msDS-SupportedEncryptionTypes 24): without it Samba's KDC issues RC4
# tickets, and RC4 session keys give padded sealed messages that pywinrm
# rejects. Its password never expires (the domain outlives 42 days) and is
# kept nowhere: the keys come from the database (exportkeytab).
ensure_service_account() {
    local dn="CN=$KRB_SERVICE,CN=Users,$BASE_DN" n spns=()
    for n in $(seq 1 "$KRB_HOSTS"); do spns+=("servicePrincipalName: HTTP/$(krb_host "$n")"); done
    if ! ldap_search_admin 1 -b "$dn" -s base 1.1 >/dev/null 2>&1; then
        local pw
        pw=$(gen_password)
        {
            printf 'dn: %s\nchangetype: add\nobjectClass: user\nsAMAccountName: %s\n' "$dn" "$KRB_SERVICE"
            printf 'description: service account of the lab WinRM servers (Kerberos, HTTP/exNN SPNs)\n'
            printf 'unicodePwd:: %s\n' "$(unicode_pwd "$pw")"
            printf 'userAccountControl: 66048\nmsDS-SupportedEncryptionTypes: 24\n'
            printf '%s\n' "${spns[@]}"
            printf '\n'
        } | ldap_admin 1 >"$TMPLOG" 2>&1 || { cat "$TMPLOG" >&2; die "creating $KRB_SERVICE failed"; }
        log "created service account $KRB_SERVICE with SPNs HTTP/ex01..ex$(printf %02d "$KRB_HOSTS").$DNS_DOMAIN"
    else
        # Made by an earlier version of this section: bring it up to date.
        {
            printf 'dn: %s\nchangetype: modify\nreplace: msDS-SupportedEncryptionTypes\nmsDS-SupportedEncryptionTypes: 24\n-\n' "$dn"
            printf 'replace: servicePrincipalName\n'
            printf '%s\n' "${spns[@]}"
            printf -- '-\n\n'
        } | ldap_admin 1 >"$TMPLOG" 2>&1 || { cat "$TMPLOG" >&2; die "updating $KRB_SERVICE failed"; }
    fi
}

# ldap/<name> for DC2 and RODC1, as every Windows DC has it: Samba's join
# registers only HOST/ for them on DC1, whose KDC then knows no service to
# issue a ticket for, and a Kerberos (SASL GSSAPI) bind to them fails.
ensure_dc_ldap_spns() {
    local n name dn
    for n in 2 3; do
        name=$(dc_name "$n")
        dn="CN=${name^^},OU=Domain Controllers,$BASE_DN"
        ldap_search_admin 1 -b "$dn" -s base servicePrincipalName 2>/dev/null |
            grep -qix "servicePrincipalName: ldap/$name.$DNS_DOMAIN" && continue
        printf 'dn: %s\nchangetype: modify\nadd: servicePrincipalName\nservicePrincipalName: ldap/%s.%s\n-\n\n' \
            "$dn" "$name" "$DNS_DOMAIN" | ldap_admin 1 >"$TMPLOG" 2>&1 ||
            { cat "$TMPLOG" >&2; die "adding ldap/$name.$DNS_DOMAIN to ${name^^}\$ failed"; }
    done
}

# DIR/lab.keytab: the real keys of every HTTP/exNN SPN, from DC1's database.
export_lab_keytab() {
    local tmp=$DIR/lab.keytab.tmp n
    rm -f "$tmp"
    for n in $(seq 1 "$KRB_HOSTS"); do
        samba-tool domain exportkeytab "$tmp" --principal="HTTP/$(krb_host "$n")" \
            -s "$DIR/dc1/etc/smb.conf" >"$TMPLOG" 2>&1 </dev/null ||
            { cat "$TMPLOG" >&2; die "exportkeytab HTTP/$(krb_host "$n") failed"; }
    done
    chmod 600 "$tmp"
    mv "$tmp" "$DIR/lab.keytab"
}

# DIR/wrong.keytab: lab.keytab with every key replaced by random bytes of
# the same length (same principals, kvnos and enctypes), so an acceptor
# using it fails on the key (integrity check), not on a missing kvno or
# enctype. Rewritten here (MIT keytab format 0x0502) because MIT ktutil
# reads keys only from a prompt that swallows the rest of a piped script.
write_wrong_keytab() {
    (umask 077 && python3 - "$DIR/lab.keytab" "$DIR/wrong.keytab.tmp" <<'PY'
import os, struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:2] == b"\x05\x02", "not an MIT v2 keytab"
out, pos, keys = bytearray(data[:2]), 2, 0
while pos < len(data):
    (size,) = struct.unpack_from(">i", data, pos)
    entry = bytearray(data[pos + 4 : pos + 4 + abs(size)])
    if size > 0:  # a negative size is a hole: copied as it is
        (ncomp,) = struct.unpack_from(">H", entry, 0)
        p = 2
        for _ in range(ncomp + 1):  # realm, then the components
            p += 2 + struct.unpack_from(">H", entry, p)[0]
        p += 4 + 4 + 1 + 2  # name type, timestamp, kvno (8 bits), enctype
        (klen,) = struct.unpack_from(">H", entry, p)
        entry[p + 2 : p + 2 + klen] = os.urandom(klen)
        keys += 1
    out += data[pos : pos + 4] + entry
    pos += 4 + abs(size)
assert keys > 0, "no keys in the lab keytab"
open(sys.argv[2], "wb").write(out)
PY
    ) || die "writing $DIR/wrong.keytab failed"
    chmod 600 "$DIR/wrong.keytab.tmp"
    mv "$DIR/wrong.keytab.tmp" "$DIR/wrong.keytab"
}

# Appends the Kerberos facts to DIR/env when missing (older domains too).
env_add_kerberos() {
    local env=$DIR/env
    [ -f "$env" ] || return 0
    grep -q '^SAMBA_KRB5_CONF=' "$env" || printf '%s\n' \
        "SAMBA_KRB5_CONF=$DIR/krb5.conf" "SAMBA_LAB_KEYTAB=$DIR/lab.keytab" \
        "SAMBA_WRONG_KEYTAB=$DIR/wrong.keytab" "SAMBA_KRB_SERVICE=$KRB_SERVICE" \
        "SAMBA_KRB_HOSTS=$KRB_HOSTS" >>"$env"
}

# Idempotent: krb5.conf, the service account and its SPNs, both keytabs,
# the /etc/hosts lines; quick to skip once done (kerberos_ready).
ensure_kerberos() {
    local t host
    # Two 'up's at once (two test processes) must not both create exsvc.
    exec 9>"$DIR/.kerberos.lock"
    flock 9
    kerberos_ready && { exec 9>&-; return 0; }
    t=$(now)
    write_krb5_conf
    for host in $(missing_ex_hosts); do
        printf '127.0.0.1\t%s %s %s\n' "$host" "${host%%.*}" "$HOSTS_MARK" >>/etc/hosts
    done
    ensure_service_account
    ensure_dc_ldap_spns
    export_lab_keytab
    write_wrong_keytab
    env_add_kerberos
    echo "$KRB_SETUP_VERSION" >"$DIR/.kerberos"
    exec 9>&-
    log "kerberos: KRB5_CONFIG=$DIR/krb5.conf, HTTP/ex01..ex$(printf %02d "$KRB_HOSTS").$DNS_DOMAIN@$REALM (account $KRB_SERVICE, AES, kvno $(klist -k "$DIR/lab.keytab" | awk 'NR == 4 { print $1 }')) in $DIR/lab.keytab, non-matching keys in $DIR/wrong.keytab, ex01..ex$(printf %02d "$KRB_HOSTS").$DNS_DOMAIN -> 127.0.0.1 in /etc/hosts ($(elapsed "$t")s)"
}

# ---------------------------------------------------------------- env

write_env() {
    local env=$DIR/env
    umask 077
    cat >"$env.tmp" <<EOF
SAMBA_REALM=$REALM
SAMBA_DOMAIN=$DOMAIN
SAMBA_DNS_DOMAIN=$DNS_DOMAIN
SAMBA_BASE_DN=$BASE_DN
SAMBA_CONFIG_DN=$CONFIG_DN
SAMBA_DC1_URL=ldaps://127.0.0.1
SAMBA_DC2_URL=ldaps://127.0.0.2
SAMBA_DC1_HOST=dc1.$DNS_DOMAIN
SAMBA_DC2_HOST=dc2.$DNS_DOMAIN
SAMBA_RODC_URL=ldaps://127.0.0.3
SAMBA_RODC_HOST=rodc1.$DNS_DOMAIN
SAMBA_CA=$DIR/dc1/private/tls/ca.pem
SAMBA_ADMIN_USER=Administrator@$DNS_DOMAIN
SAMBA_ADMIN_PASSWORD=$ADMIN_PW
SAMBA_OPERATOR_USER=revoke-op@$DNS_DOMAIN
SAMBA_USER_PASSWORD=$USER_PW
SAMBA_USERS=alice,bob,carol1,carol2,admin-alice,nested-admin,revoke-op
SAMBA_DC1_PID=$(cat "$DIR/dc1.pid")
SAMBA_DC2_PID=$(cat "$DIR/dc2.pid")
SAMBA_RODC_PID=$(cat "$DIR/dc3.pid")
SAMBA_DC1_SMB_CONF=$DIR/dc1/etc/smb.conf
SAMBA_DC2_SMB_CONF=$DIR/dc2/etc/smb.conf
SAMBA_RODC_SMB_CONF=$DIR/dc3/etc/smb.conf
EOF
    chmod 600 "$env.tmp"
    mv "$env.tmp" "$env"
    env_add_kerberos
}

# Restarting an existing domain gets new pids: rewrite only those lines.
update_env_pids() {
    local env=$DIR/env
    sed -i -e "s/^SAMBA_DC1_PID=.*/SAMBA_DC1_PID=$(cat "$DIR/dc1.pid")/" \
        -e "s/^SAMBA_DC2_PID=.*/SAMBA_DC2_PID=$(cat "$DIR/dc2.pid")/" "$env"
    # A domain made before the RODC existed gets its lines once.
    grep -q '^SAMBA_RODC_URL=' "$env" || printf '%s\n' \
        "SAMBA_RODC_URL=ldaps://127.0.0.3" "SAMBA_RODC_HOST=rodc1.$DNS_DOMAIN" \
        "SAMBA_RODC_PID=" "SAMBA_RODC_SMB_CONF=$DIR/dc3/etc/smb.conf" >>"$env"
    sed -i -e "s/^SAMBA_RODC_PID=.*/SAMBA_RODC_PID=$(cat "$DIR/dc3.pid")/" "$env"
}

# ---------------------------------------------------------------- commands

cmd_up() {
    [ "$(id -u)" = 0 ] || die "must run as root (apt-get, ip addr, /etc/hosts, samba)"
    if [ -f "$DIR/.complete" ]; then
        if dc_running 1 && dc_running 2 && dc_running 3; then
            log "already running in $DIR (dc1 pid $(cat "$DIR/dc1.pid"), dc2 pid $(cat "$DIR/dc2.pid"), rodc1 pid $(cat "$DIR/dc3.pid"))"
            # A domain made before the Kerberos pieces existed gets them now.
            kerberos_ready || ensure_kerberos
            exit 0
        fi
        install_packages
        ensure_network
        local n
        dc_running 1 || dc_running 2 || dc_running 3 || check_ports_free
        for n in 1 2; do dc_running "$n" || start_dc "$n"; done
        for n in 1 2; do wait_ldaps "$n"; done
        # A domain made before the read-only DC existed gets one now.
        ADMIN_PW=$(sed -n 's/^SAMBA_ADMIN_PASSWORD=//p' "$DIR/env")
        if [ -f "$DIR/dc3/etc/smb.conf" ]; then
            dc_running 3 || start_dc 3
            wait_ldaps 3
        else
            add_rodc
        fi
        update_env_pids
        kerberos_ready || ensure_kerberos
        log "restarted the existing domain in $DIR"
        exit 0
    fi
    if [ -d "$DIR" ] && [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
        die "$DIR is not empty and holds no complete domain (a failed up?): run '$0 down $DIR' and remove it"
    fi
    check_ports_free
    mkdir -p "$DIR/secrets" "$DIR/seed"
    chmod 700 "$DIR" "$DIR/secrets"

    local t_all t t_pkg t_prov t_join t_seed t_schema t_repl
    t=$(now)
    install_packages
    t_pkg=$(elapsed "$t")
    ensure_network

    t_all=$(now)
    ADMIN_PW=$(gen_password)
    USER_PW=$(gen_password)
    (
        umask 077
        printf '%s' "$ADMIN_PW" >"$DIR/secrets/admin.pw"
        printf '%s' "$USER_PW" >"$DIR/secrets/user.pw"
    )
    make_ca

    t=$(now)
    log "provisioning dc1"
    provision_dc1
    install_dc_cert 1 "$DIR/dc1"
    start_dc 1
    wait_ldaps 1
    t_prov=$(elapsed "$t")
    log "dc1 answers LDAPS on 127.0.0.1:636 (${t_prov}s)"

    # The schema goes in before DC2 joins: the join copies it. A later
    # schema change cannot reach DC2 through 'drs replicate --local' (see
    # replicate_to_dc2).
    t=$(now)
    log "adding the minimal Exchange schema and server objects on dc1"
    exchange_schema
    exchange_objects
    t_schema=$(elapsed "$t")

    t=$(now)
    log "joining dc2"
    join_dc2
    install_dc_cert 2 "$DIR/dc2"
    start_dc 2
    wait_ldaps 2
    t_join=$(elapsed "$t")
    log "dc2 answers LDAPS on 127.0.0.2:636 (${t_join}s)"

    t=$(now)
    log "seeding users, groups and delegation on dc1"
    seed
    t_seed=$(elapsed "$t")

    # After the seed: the RODC caches revoke-op's password.
    add_rodc

    # Before the pull, so DC2 has the service account too.
    ensure_kerberos

    t=$(now)
    log "replicating dc1 -> dc2 once (drs replicate --local: configuration and domain NCs)"
    replicate_to_dc2
    t_repl=$(elapsed "$t")
    local n
    for n in 1 2; do
        check_bind "$n" alice || die "alice cannot bind on dc$n after replication"
    done

    write_env
    touch "$DIR/.complete"
    printf 'samba-ad up: %s on dc1=ldaps://127.0.0.1 dc2=ldaps://127.0.0.2 rodc1=ldaps://127.0.0.3 in %ss (packages %ss, provision+start %ss, join+start %ss, seed %ss, schema %ss, replicate %ss); env: %s/env\n' \
        "$REALM" "$(elapsed "$t_all")" "$t_pkg" "$t_prov" "$t_join" "$t_seed" "$t_schema" "$t_repl" "$DIR"
}

stop_pid() { # pid what
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 40); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.25
    done
    log "$2 (pid $pid) ignored SIGTERM for 10s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

load_env() {
    [ -f "$DIR/.complete" ] && [ -f "$DIR/env" ] || die "$DIR holds no domain made by '$0 up'"
    ADMIN_PW=$(sed -n 's/^SAMBA_ADMIN_PASSWORD=//p' "$DIR/env")
    dc_running 1 && dc_running 2 && dc_running 3 || die "the DCs of $DIR are not running ('$0 up $DIR' restarts them)"
}

# DC2 pulls from DC1 on demand: 'drs replicate --local' opens DC2's database
# directly and fetches DC1's changes over DRSUAPI (no name resolution of
# DC1's GUID needed). With a DN: only that object (--single-object).
cmd_sync() { # [DN]
    load_env
    local t
    t=$(now)
    if [ -n "$1" ]; then
        PASSWD=$ADMIN_PW samba-tool drs replicate dc2 dc1 "$1" --local --single-object \
            -s "$DIR/dc2/etc/smb.conf" -U Administrator --use-kerberos=off >"$TMPLOG" 2>&1 </dev/null ||
            { cat "$TMPLOG" >&2; die "replicating $1 to dc2 failed"; }
    else
        : >"$TMPLOG"
        local nc
        for nc in "$CONFIG_DN" "$BASE_DN"; do
            PASSWD=$ADMIN_PW samba-tool drs replicate dc2 dc1 "$nc" --local \
                -s "$DIR/dc2/etc/smb.conf" -U Administrator --use-kerberos=off >>"$TMPLOG" 2>&1 </dev/null ||
                { cat "$TMPLOG" >&2; die "replicating $nc to dc2 failed"; }
        done
    fi
    log "dc2 pulled from dc1 in $(elapsed "$t")s: $(grep -E 'replication of' "$TMPLOG" | tr '\n' ' ')"
}

# The same pull into the read-only DC (what its inbound replication would
# bring: the object, not its secrets).
cmd_sync_rodc() { # [DN]
    load_env
    local t nc single=()
    t=$(now)
    : >"$TMPLOG"
    if [ -n "$1" ]; then
        nc=$1
        single=(--single-object)
    else
        nc=$BASE_DN
    fi
    PASSWD=$ADMIN_PW samba-tool drs replicate rodc1 dc1 "$nc" --local "${single[@]}" \
        -s "$DIR/dc3/etc/smb.conf" -U Administrator --use-kerberos=off >>"$TMPLOG" 2>&1 </dev/null ||
        { cat "$TMPLOG" >&2; die "replicating $nc to rodc1 failed"; }
    log "rodc1 pulled from dc1 in $(elapsed "$t")s: $(grep -E 'replication of' "$TMPLOG" | tr '\n' ' ')"
}

cmd_rodc_cache() { # user...
    load_env
    rodc_cache "$@"
    log "rodc1 now holds the passwords of: $*"
}

# DC2 cannot replicate by itself because it resolves DC1 as
# <DC1 DSA objectGUID>._msdcs.<domain> and there is no DNS. An /etc/hosts
# line for that name is enough: DC1 notifies DC2 of each change and DC2
# pulls it within a second. 'off' removes the line and the lag is back.
cmd_autorepl() { # on|off
    load_env
    local guid mark
    guid=$(dc1_guid)
    [ -n "$guid" ] || die "cannot read DC1's DSA objectGUID"
    mark="# samba-ad.sh autorepl"
    case "$1" in
    on)
        grep -q "^127\.0\.0\.1[[:space:]]$guid\._msdcs\." /etc/hosts ||
            printf '127.0.0.1\t%s._msdcs.%s %s\n' "$guid" "$DNS_DOMAIN" "$mark" >>/etc/hosts
        log "automatic replication dc1 -> dc2 on (DC1 is $guid._msdcs.$DNS_DOMAIN)"
        ;;
    off)
        remove_hosts_lines "$guid._msdcs"
        log "automatic replication dc1 -> dc2 off"
        ;;
    *) usage ;;
    esac
}

dc1_guid() { # DC1's DSA objectGUID, read from its database file ("" if none)
    local db=$DIR/dc1/private/sam.ldb dsa
    [ -f "$db" ] || return 0
    dsa=$(ldbsearch -H "$db" -b '' -s base dsServiceName 2>/dev/null | ldif_unwrap |
        sed -n 's/^dsServiceName: //p') || true
    [ -n "$dsa" ] || return 0
    ldbsearch -H "$db" -b "$dsa" -s base objectGUID 2>/dev/null | ldif_unwrap |
        sed -n 's/^objectGUID: //p' || true
}

remove_hosts_lines() { # drop /etc/hosts lines containing this fixed string
    local tmp
    tmp=$(mktemp)
    grep -vF -e "$1" /etc/hosts >"$tmp" || true
    # /etc/hosts may be a bind mount: rewrite in place, do not replace it.
    if ! cmp -s "$tmp" /etc/hosts; then cat "$tmp" >/etc/hosts; fi
    rm -f "$tmp"
}

cmd_down() {
    local n pid f comm stopped=0
    for n in 1 2 3; do
        if dc_running "$n"; then
            pid=$(cat "$DIR/dc$n.pid")
            log "stopping $(dc_name "$n") (pid $pid)"
            stop_pid "$pid" "$(dc_name "$n")"
            stopped=1
        fi
        # Anything left behind that wrote a pid file into this DC's own pid
        # directory (smbd and winbindd detach into their own sessions).
        for f in "$DIR/dc$n"/run/*.pid; do
            [ -f "$f" ] || continue
            pid=$(tr -dc '0-9' <"$f")
            pid_is_ours "$pid" "$n" || continue
            comm=$(cat "/proc/$pid/comm")
            log "stopping leftover $comm (pid $pid) of dc$n"
            stop_pid "$pid" "$comm"
        done
    done
    [ $stopped = 1 ] || log "no DC of $DIR was running"
    local guid
    guid=$(dc1_guid)
    [ -z "$guid" ] || remove_hosts_lines "$guid._msdcs"
}

[ $# -ge 2 ] || usage
case "$2" in
/*) DIR=$2 ;;
*) DIR=$PWD/$2 ;;
esac
# Canonical: running DCs are recognised by their working directory.
DIR=$(realpath -m "$DIR")
TMPLOG=$(mktemp)
trap 'rm -f "$TMPLOG"' EXIT
case "$1" in
up) [ $# -eq 2 ] || usage; cmd_up ;;
down) [ $# -eq 2 ] || usage; cmd_down ;;
sync) [ $# -le 3 ] || usage; cmd_sync "${3:-}" ;;
sync-rodc) [ $# -le 3 ] || usage; cmd_sync_rodc "${3:-}" ;;
rodc-cache) [ $# -ge 3 ] || usage; shift 2; cmd_rodc_cache "$@" ;;
autorepl) [ $# -eq 3 ] || usage; cmd_autorepl "$3" ;;
*) usage ;;
esac
