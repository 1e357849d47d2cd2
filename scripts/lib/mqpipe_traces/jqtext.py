"""Values written as jq 1.6 writes them (the normalized lines were first
made by jq, and committed .expected files and tests compare with them)."""
import json
import math
from decimal import Decimal

DBL_MAX = 1.7976931348623157e308


def number(x):
    """A JSON number as jq prints it: a double, shortest digits, decimal
    unless the exponent is below -4 or past the digits by more than 15
    (then d.ddde+NN); NaN as null, infinities as DBL_MAX."""
    x = float(x)
    if math.isnan(x):
        return "null"
    if math.isinf(x):
        x = math.copysign(DBL_MAX, x)
    if x == 0:
        return "-0" if math.copysign(1, x) < 0 else "0"
    sign, digits, exp = Decimal(repr(x)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    decpt = len(digits) + exp  # the decimal point's place after the first digit run
    neg = "-" if sign else ""
    if decpt <= -4 or decpt > len(ds) + 15:
        e = decpt - 1
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return "%s%se%s%02d" % (neg, mant, "-" if e < 0 else "+", abs(e))
    if decpt <= 0:
        return neg + "0." + "0" * -decpt + ds
    if decpt >= len(ds):
        return neg + ds + "0" * (decpt - len(ds))
    return neg + ds[:decpt] + "." + ds[decpt:]


def tojson(v):
    """v as jq's tostring/tojson writes it: compact, numbers as number()."""
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, (int, float)):
        return number(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ",".join(map(tojson, v)) + "]"
    return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + tojson(x) for k, x in v.items()) + "}"


def tostring(v):
    """jq's tostring: a string as itself, anything else as JSON."""
    return v if isinstance(v, str) else tojson(v)


def type_name(v):
    """jq's name of v's type."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(v)]


class JqError(Exception):
    """What would have made jq report an error for this input."""


def tsv_field(v):
    """One field of jq's @tsv: strings with \\ tab newline return escaped,
    numbers as number(), null empty; arrays and objects are an error."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return number(v)
    if isinstance(v, str):
        return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    raise JqError("%s (%s) is not valid in a csv row" % (type_name(v), tojson(v)))


def join(values, sep=","):
    """jq 1.6's join: null as empty, numbers and booleans as JSON."""
    out = []
    for v in values:
        if v is None:
            out.append("")
        elif isinstance(v, (str, bool, int, float)):
            out.append(tostring(v))
        else:
            raise JqError("Cannot join with %s" % type_name(v))
    return sep.join(out)


def rounded(v, places=2):
    """jq's `v * 10^places | round / 10^places`: halves away from zero."""
    scale = 10 ** places
    x = v * scale
    return math.copysign(math.floor(abs(x) + 0.5), x) / scale


def get(obj, *path):
    """jq's .a.b[0]: obj[a][b][0], None where a step is missing."""
    for step in path:
        try:
            obj = obj[step]
        except (KeyError, IndexError, TypeError):
            return None
    return obj
