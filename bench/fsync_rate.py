"""How many write+fsync pairs per second this disk sustains (one writer)."""
import os
import sys
import tempfile
import time

directory = sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()
seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 5.0
path = os.path.join(directory, "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
count = 0
block = b"x" * 128
deadline = time.monotonic() + seconds
start = time.monotonic()
while time.monotonic() < deadline:
    os.write(fd, block)
    os.fsync(fd)
    count += 1
elapsed = time.monotonic() - start
os.close(fd)
os.unlink(path)
print(f"{count / elapsed:.0f}")
