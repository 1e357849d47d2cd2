"""What a replay must reproduce, one tab-separated line per output
(test/traces/README.md): from mqpipe-record's JSON Lines, the fields that
do not depend on the clock; rates and averages with 6 decimals."""
import json
import re
import sys

from . import jqtext
from .jqtext import JqError
from .textsort import sorted_lines


def get(p, key):
    """p[key] as jq's .key: null on null, an error on what is no object."""
    if p is None:
        return None
    if not isinstance(p, dict):
        raise JqError("Cannot index %s with string \"%s\"" % (jqtext.type_name(p), key))
    return p.get(key)


def each(v):
    """v[] as jq iterates it: an array's items or an object's values."""
    if isinstance(v, list):
        return v
    if isinstance(v, dict):
        return list(v.values())
    raise JqError("Cannot iterate over %s" % jqtext.type_name(v))


def length(v):
    """jq's length."""
    if v is None:
        return 0
    if isinstance(v, bool):
        raise JqError("boolean has no length")
    if isinstance(v, (int, float)):
        return abs(v)
    return len(v)


def jq_order(v):
    """A sort key in jq's order: null < false < true < numbers < strings
    < arrays < objects."""
    if v is None:
        return (0,)
    if isinstance(v, bool):
        return (1 + v,)
    if isinstance(v, (int, float)):
        return (3, float(v))
    if isinstance(v, str):
        return (4, v)
    return (5 if isinstance(v, list) else 6, jqtext.tojson(v))


def payload_of(m):
    """The message's payload as JSON when it parses, else as text; None
    when it has none (a binary payload is payload_b64)."""
    if not isinstance(m, dict):
        raise JqError("Cannot check whether %s has a string key" % jqtext.type_name(m))
    if "payload" not in m:
        return None
    p = m["payload"]
    if isinstance(p, str):
        try:
            return json.loads(p)
        except ValueError:
            return p
    return p


def fields(m):
    """The normalized fields of one recorded message (a list of values
    before @tsv), by its topic and payload; raises JqError where jq would."""
    t = m.get("topic") if isinstance(m, dict) else None
    p = payload_of(m)
    topic = t if isinstance(t, str) else ""
    if re.search(r"(^|/)success_rate$", topic):
        head = [get(p, k) for k in ("moduleid", "timestamp", "received", "attempts", "success_rate")]
        rate = head.pop()
        return ["success_rate", *head, "null" if rate is None or rate is False else rate]
    if re.search(r"(^|/)alerts/", topic):
        return ["alert", get(p, "metric"), get(p, "timestamp"), get(p, "value"), get(p, "samples"),
                get(p, "average")]
    if re.search(r"(^|/)job.summary$", topic):
        ids = [jqtext.tostring(get(r, "caseId")) for r in each(get(p, "results"))]
        return ["job.summary", get(p, "requestId"), get(p, "cases"), jqtext.join(ids)]
    if re.search(r"(^|/)dashboard.ready$", topic):
        sources = get(p, "sources")
        if not isinstance(sources, (dict, list)):
            raise JqError("%s has no keys" % jqtext.type_name(sources))
        keys = sorted(sources) if isinstance(sources, dict) else list(range(len(sources)))
        return ["dashboard.ready", get(p, "request_id"), get(p, "dashboard_type"), get(p, "time_range"),
                get(p, "total_inputs"), jqtext.join(keys)]
    if re.search(r"(^|/)deadletter/", topic):
        return ["deadletter", re.sub(r"^(.*/)?deadletter/", "", topic, count=1), get(p, "agent")]
    if isinstance(p, dict) and "items" in p:
        items = p["items"]
        return [t, p.get("status"), length(items), jqtext.join([get(i, "user_name") for i in each(items)])]
    if isinstance(p, dict) and "status" in p:
        errors = p.get("errors")
        try:
            listed = each(errors)
        except JqError:
            listed = []  # .errors[]? yields nothing for what it cannot iterate
        found = {}
        for e in listed:
            f = get(e, "field")
            found.setdefault(jqtext.tojson(f), f)
        named = jqtext.join(sorted(found.values(), key=jq_order)) or "-"
        ident = p.get("id")
        return [t, p.get("status"), "-" if ident is None or ident is False else ident, named]
    return ["unexpected", t, jqtext.tostring(p)]


def awk_number(s):
    """s as awk reads a number from text: its leading decimal number, else 0."""
    m = re.match(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s)
    return float(m.group(0)) if m else 0.0


def line_of(m):
    """One recorded message's normalized line (rates and averages with 6
    decimals); raises JqError for a message jq could not normalize."""
    cols = [jqtext.tsv_field(v) for v in fields(m)]
    if cols[0] == "success_rate" and cols[5] != "null":
        cols[5] = "%.6f" % awk_number(cols[5])
    elif cols[0] == "alert":
        cols[5] = "%.6f" % awk_number(cols[5])
    return "\t".join(cols)


def messages(text):
    """The JSON values in text (jq's input stream), each with its line
    number; stops with ValueError at text that does not parse."""
    dec = json.JSONDecoder()
    i, n = 0, len(text)
    ws = re.compile(r"[ \t\n\r]*")
    while True:
        i = ws.match(text, i).end()
        if i >= n:
            return
        v, j = dec.raw_decode(text, i)
        yield text.count("\n", 0, i) + 1, v
        i = j


def normalize_text(text, label="/dev/stdin", errors=sys.stderr):
    """Returns (sorted normalized lines, status). A message that cannot be
    normalized is reported on errors (as jq did, naming label and its line)
    and left out; status is then 5 if it was the last message (jq 1.6's
    exit status is the last input's), else 0; 2 when the input stops
    parsing (what came before is kept). Not unique: an output published
    twice must show."""
    out, status = [], 0
    try:
        for lineno, m in messages(text):
            try:
                out.append(line_of(m))
                status = 0
            except JqError as e:
                print("jq: error (at %s:%d): %s" % (label, lineno, e), file=errors)
                status = 5
    except ValueError as e:
        print("jq: error (at %s:%d): %s" % (label, text.count("\n") + 1, e), file=errors)
        status = 2
    return sorted_lines(out), status


def normalize_file(path, errors=sys.stderr):
    """normalize_text over the file at path (None: stdin); raises OSError
    when it cannot be read."""
    if path is None:
        text = sys.stdin.buffer.read().decode("utf-8", "replace")
    else:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    return normalize_text(text, path or "/dev/stdin", errors)
