"""Opens N keep-alive connections, sends one request on each, keeps them all open, reports the
proxy's RSS, then checks a new request is still served."""
import resource
import socket
import sys
import time

host, port, count, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
if hard < count + 100:
    sys.exit(f"  cannot hold {count} connections: the open-files limit is {hard}")

def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return line.split()[1] + " kB"

request = f"GET /v1/payments HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
socks = []
for i in range(count):
    s = socket.create_connection((host, port))
    s.sendall(request)
    socks.append(s)
served = 0
for s in socks:
    s.settimeout(10)
    data = s.recv(65536)
    if data.startswith(b"HTTP/1.1 201"):
        served += 1
time.sleep(1)
print(f"  holding {len(socks)} idle keep-alive connections ({served} answered): RSS {rss()}")
probe = socket.create_connection((host, port))
probe.settimeout(10)
probe.sendall(request)
ok = probe.recv(65536).startswith(b"HTTP/1.1 201")
print(f"  a new request while they are held: {'served' if ok else 'FAILED'}")
for s in socks:
    s.close()
