# Shared helpers for the scripts in this directory.

# Installs the given Debian packages if any is missing (apt-get; sudo when not root).
ensure_packages() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "installing: ${missing[*]}"
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    # Debian starts redis-server as a service on install; the scripts run their own.
    if [ -x /etc/init.d/redis-server ] && pgrep -x redis-server >/dev/null 2>&1 && [ -n "${STOP_SYSTEM_REDIS:-}" ]; then
        /etc/init.d/redis-server stop >/dev/null 2>&1 || true
    fi
}

ensure_swift() {
    if ! command -v swift >/dev/null 2>&1; then
        [ -x /opt/swift/usr/bin/swift ] && export PATH="/opt/swift/usr/bin:$PATH"
    fi
    command -v swift >/dev/null 2>&1 || { echo "swift is not installed (expected in PATH or /opt/swift)" >&2; exit 1; }
}

# Sets the variable named $1 to a TCP port on 127.0.0.1 that nothing listens on and that no
# earlier call handed out. It runs in the calling shell, not in $(...): a subshell would not
# remember the ports already chosen, and two services could be given the same port.
USED_PORTS=" "
pick_port() {
    # The local name must not be one a caller passes in: printf -v would set the local.
    local __candidate
    for _ in $(seq 1 200); do
        # Below the kernel's ephemeral range (32768-60999 by default): a port in it can be
        # taken at any moment by an outgoing connection's local end, and bind then fails.
        __candidate=$(( (RANDOM % 12000) + 20000 ))
        case "$USED_PORTS" in *" $__candidate "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$__candidate") 2>/dev/null; then
            USED_PORTS="$USED_PORTS$__candidate "
            printf -v "$1" '%s' "$__candidate"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}
