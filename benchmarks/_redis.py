"""A throwaway redis-server for the benchmarks, on a free 127.0.0.1 port (never 6379)."""

import os
import socket
import subprocess
import time

HOST = "127.0.0.1"


def free_port():
    """A free TCP port on 127.0.0.1 that is not Redis's default 6379."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port != 6379:
            return port


def ping(port, timeout=0.5):
    """True when a Redis server answers PING on the port."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A throwaway redis-server: ``with RedisServer(directory) as server: server.port``.

    ``durable=True`` keeps every acknowledged write across a SIGKILL (``appendonly yes``,
    ``appendfsync always``): ``restart()`` kills it and starts it again on the same port."""

    def __init__(self, directory, durable=False):
        self.directory, self.port, self.process = directory, free_port(), None
        self.durable = durable
        self.log = open(os.path.join(self.directory, "redis.log"), "ab")

    def start(self):
        command = ["redis-server", "--port", str(self.port), "--bind", HOST, "--save", ""]
        if self.durable:
            command += ["--appendonly", "yes", "--appendfsync", "always"]
        else:
            command += ["--appendonly", "no"]
        command += ["--dir", self.directory]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not ping(self.port):  # a server loading its data answers -LOADING, not +PONG
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}: {self.tail()}")
            time.sleep(0.02)
        return self

    def restart(self):
        """SIGKILL the server and start it again; the seconds it was away."""
        started = time.monotonic()
        self.process.kill()
        self.process.wait()
        self.start()
        return time.monotonic() - started

    def url(self, db=0):
        return f"redis://{HOST}:{self.port}/{db}"

    def tail(self):
        self.log.flush()
        with open(self.log.name, "rb") as f:
            return f.read()[-2000:].decode("utf-8", "replace")

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def close(self):
        self.stop()
        self.log.close()

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.log.close()
            raise

    def __exit__(self, *exc):
        self.close()
