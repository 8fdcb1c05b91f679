"""Time from starting `keyward serve` to its first 200 from /readyz.

    python ready.py BINARY DATA_DIR PORT

Starts BINARY serve on 127.0.0.1:PORT with DATA_DIR, polls https://127.0.0.1:PORT/readyz every
2 ms (certificate not checked: the server generates it during the very start being timed), prints
the milliseconds from just before the fork to the first 200, then stops the server with SIGTERM
and waits for it. Exits 1 if it is not ready within 30 s or exits first.
"""

import http.client
import os
import ssl
import subprocess
import sys
import time

binary, data_dir, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
env = dict(os.environ, KEYWARD_LOG="warn")

start = time.monotonic()
proc = subprocess.Popen(
    [binary, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{port}"],
    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
)
elapsed = None
try:
    while time.monotonic() - start < 30 and proc.poll() is None:
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=1)
        try:
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                elapsed = time.monotonic() - start
                break
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.002)
finally:
    proc.terminate()
    _, err = proc.communicate(timeout=10)
if elapsed is None:
    sys.exit(f"keyward serve was not ready within 30 s: {err.decode(errors='replace')[-2000:]}")
print(f"{elapsed * 1000:.1f}")
