#!/usr/bin/env python3
"""A TCP relay on loopback: accepts on LISTEN_PORT (0: a free port, printed)
and relays each connection to TARGET_PORT on 127.0.0.1, both ways.

t_topology_cluster puts one in front of an ejabberd node's MQTT listener:
stopped (SIGSTOP), the clients' connections to that node hang while the node
keeps running and queues what it would deliver, in its memory and in the
relay's socket buffers, which a SIGKILL of both then loses (README "Scaling
out"). Prints "port N" once listening; stopped by PID."""
import socket
import sys
import threading


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def main():
    if len(sys.argv) != 3:
        print("usage: tcp_relay.py LISTEN_PORT TARGET_PORT", file=sys.stderr)
        sys.exit(64)
    listen_port, target = int(sys.argv[1]), int(sys.argv[2])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", listen_port))
    srv.listen(128)
    print("port %d" % srv.getsockname()[1], flush=True)
    while True:
        client, _ = srv.accept()
        try:
            upstream = socket.create_connection(("127.0.0.1", target))
        except OSError:
            client.close()
            continue
        for s in (client, upstream):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()


if __name__ == "__main__":
    main()
