"""The "browser" of toolgate's sign-in tests, named by $BROWSER: follows the authorization URL
(given last) with an HTTP client, through the authorization server's redirect to toolgate's
loopback listener, as a person's browser would after they approved. Appends a line to LOG each
time it runs, so tests can count sign-ins.

Usage: browser.py LOG URL
"""
import sys
import urllib.request

log, url = sys.argv[1], sys.argv[2]
with open(log, "a") as f:
    f.write("opened\n")
with urllib.request.urlopen(url, timeout=30) as response:
    response.read()
