#!/usr/bin/env python3
"""Mirror Lifeline tickets into Zammad: a webhook receiver (Python 3 standard library only).

Lifeline POSTs each ticket event here; this checks the signature, drops replays and duplicates,
and creates or updates the matching Zammad ticket through Zammad's REST API. See
docs/integrations.md for the Lifeline side.

Environment:
  LIFELINE_WEBHOOK_SECRET  the same text as the collector's secret_file (required)
  ZAMMAD_URL               e.g. https://zammad.example.org (unset: print the calls instead)
  ZAMMAD_TOKEN             a Zammad access token with ticket.agent permission
  ZAMMAD_GROUP             Zammad group for new tickets (default: Users)
  ZAMMAD_CUSTOMER          customer e-mail for new tickets (default: lifeline@example.org)
  BRIDGE_LISTEN            address:port to listen on (default: 127.0.0.1:8090)
  BRIDGE_STATE             JSON file mapping Lifeline numbers to Zammad ids (default: ./bridge-state.json)
"""

import hashlib
import hmac
import json
import os
import sys
import time
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock

SECRET = os.environ["LIFELINE_WEBHOOK_SECRET"].strip().encode()
ZAMMAD_URL = os.environ.get("ZAMMAD_URL", "").rstrip("/")
ZAMMAD_TOKEN = os.environ.get("ZAMMAD_TOKEN", "")
GROUP = os.environ.get("ZAMMAD_GROUP", "Users")
CUSTOMER = os.environ.get("ZAMMAD_CUSTOMER", "lifeline@example.org")
STATE_FILE = os.environ.get("BRIDGE_STATE", "bridge-state.json")
MAX_AGE = 300          # seconds: older signed requests are refused as replays
MAX_BODY = 1 << 20     # Lifeline's payloads are far smaller

# Lifeline status -> Zammad state; priority -> Zammad priority.
STATES = {"new": "new", "open": "open", "in_progress": "open", "waiting_on_user": "open",
          "resolved": "closed", "closed": "closed"}
PRIORITIES = {"low": "1 low", "normal": "2 normal", "high": "3 high", "critical": "3 high"}

lock = Lock()


def load_state():
    try:
        with open(STATE_FILE) as f:
            return json.load(f)
    except FileNotFoundError:
        return {"tickets": {}, "deliveries": []}


def save_state(state):
    tmp = STATE_FILE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, STATE_FILE)


def zammad(method, path, body):
    if not ZAMMAD_URL:
        print(f"(dry run) {method} {path} {json.dumps(body)}", flush=True)
        return {"id": 0}
    request = urllib.request.Request(
        ZAMMAD_URL + path, method=method, data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json",
                 "Authorization": f"Token token={ZAMMAD_TOKEN}"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.load(response)


def article(event):
    """The Zammad article for what changed in this event."""
    ticket = event["ticket"]
    if event.get("comment"):
        c = event["comment"]
        return {"body": f"{c['author']}: {c['body']}", "type": "note", "internal": not c["public"]}
    if event.get("feedback"):
        f = event["feedback"]
        answer = "yes" if f["fixed"] else "no (reopened)"
        said = f": {f['comment']}" if f.get("comment") else ""
        return {"body": f"Did this fix it? {answer}{said}", "type": "note", "internal": True}
    if event["event"] == "ticket.created":
        findings = "\n".join(f"- [{x['severity']}] {x['title']}: {x['evidence']}"
                             for x in ticket["findings"]) or "none"
        link = f"\n\nLifeline: {ticket['url']}" if ticket.get("url") else ""
        return {"subject": ticket["description"][:80],
                "body": f"{ticket['description']}\n\nMachine: {ticket['hostname']}\n"
                        f"Findings:\n{findings}{link}",
                "type": "note", "internal": False}
    changes = ", ".join(event["changes"])
    return {"body": f"Lifeline: {changes} changed by {event['actor']}", "type": "note",
            "internal": True}


def when(rfc3339):
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))


def mirror(event):
    ticket = event["ticket"]
    number = str(ticket["number"])
    with lock:
        state = load_state()
        if event["delivery"] in state["deliveries"]:
            return  # a retry of something already mirrored
        known = state["tickets"].get(number)
        fields = {"article": article(event)}
        # Events can arrive out of order (a retry after a newer event): only a newer ticket
        # state moves the mirror's state and priority; the article is added either way.
        if known is None or when(ticket["updated_at"]) >= when(known["updated_at"]):
            fields["state"] = STATES[ticket["status"]]
            fields["priority"] = PRIORITIES[ticket["priority"]]
        if known is None:
            created = zammad("POST", "/api/v1/tickets", {
                "title": f"[Lifeline #{number}] {ticket['description'][:80]}",
                "group": GROUP, "customer": CUSTOMER, **fields})
            known = {"id": created["id"], "updated_at": ticket["updated_at"]}
        else:
            zammad("PUT", f"/api/v1/tickets/{known['id']}", fields)
            if "state" in fields:
                known["updated_at"] = ticket["updated_at"]
        state["tickets"][number] = known
        state["deliveries"] = (state["deliveries"] + [event["delivery"]])[-10000:]
        save_state(state)


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        if length > MAX_BODY:
            return self.answer(413, "too large")
        body = self.rfile.read(length)
        timestamp = self.headers.get("X-Lifeline-Timestamp", "")
        expected = "sha256=" + hmac.new(SECRET, timestamp.encode() + b"." + body,
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self.headers.get("X-Lifeline-Signature", "")):
            return self.answer(401, "bad signature")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_AGE:
            return self.answer(401, "stale timestamp")
        try:
            mirror(json.loads(body))
        except Exception as error:  # Lifeline retries a 5xx with back-off
            print(f"cannot mirror: {error}", file=sys.stderr, flush=True)
            return self.answer(502, "zammad refused or is unreachable")
        self.answer(200, "ok")

    def answer(self, status, text):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        self.wfile.write(text.encode())


if __name__ == "__main__":
    host, port = os.environ.get("BRIDGE_LISTEN", "127.0.0.1:8090").rsplit(":", 1)
    print(f"listening on {host}:{port}", flush=True)
    ThreadingHTTPServer((host, int(port)), Hook).serve_forever()
