#!/usr/bin/env python3
"""A second, independent evaluator of KMS key policies for the deployment tests.

ctfix judges key policies with its own evaluator (src/judge/policy.rs); a bug shared by the policy
generator and that evaluator would pass both. This one is written apart from it, in another
language, from AWS's documented evaluation logic for a single resource-based policy:

- an explicit Deny that matches wins; else an Allow that matches allows; else implicit deny;
- a statement matches when its Principal/NotPrincipal, Action/NotAction, Resource/NotResource
  and every Condition match the request;
- the key policy alone is judged: a principal naming the account (its id or `:root`) matches
  only the account's root, since for anyone else it delegates to IAM policies;
- actions and ARNs match with `*` and `?` wildcards, actions case-insensitively;
- condition operators: String*, Arn*, Bool, Null, with `ForAnyValue:` / `ForAllValues:` and
  `...IfExists`; an operator it does not know is an error, never a silent match.

Reads {"policy": {...}, "requests": [{"name", "principal": {"service"|"arn", "account"},
"action", "resource", "context": {key: [values]}}]} on stdin and prints
{"decisions": {name: "allow"|"deny"}}. Standard library only.
"""

import json
import re
import sys


class Unsupported(Exception):
    pass


def as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def wildcard(pattern, value, ignore_case=False):
    regex = "".join(
        ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern
    )
    flags = re.IGNORECASE if ignore_case else 0
    return re.fullmatch(regex, value, flags | re.DOTALL) is not None


def principal_matches(principal, request):
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        raise Unsupported(f"Principal {principal!r}")
    who = request["principal"]
    for kind, values in principal.items():
        for value in as_list(values):
            if kind == "AWS":
                if value == "*":
                    return True
                if "arn" not in who:
                    continue
                account = who["account"]
                root = f"arn:aws:iam::{account}:root"
                if value in (account, root) or re.fullmatch(
                    r"arn:[^:]+:iam::" + re.escape(account) + ":root", value
                ):
                    # The account: only its root, by the key policy alone.
                    if re.fullmatch(r"arn:[^:]+:iam::\d+:root", who["arn"]):
                        return True
                elif value == who["arn"]:
                    return True
            elif kind == "Service":
                if who.get("service") == value:
                    return True
            elif kind in ("Federated", "CanonicalUser"):
                continue
            else:
                raise Unsupported(f"principal kind {kind!r}")
    return False


STRING_OPS = {
    "StringEquals": (lambda p, v: p == v, False),
    "StringNotEquals": (lambda p, v: p == v, True),
    "StringEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), False),
    "StringNotEqualsIgnoreCase": (lambda p, v: p.lower() == v.lower(), True),
    "StringLike": (lambda p, v: wildcard(p, v), False),
    "StringNotLike": (lambda p, v: wildcard(p, v), True),
    "ArnEquals": (lambda p, v: wildcard(p, v), False),
    "ArnLike": (lambda p, v: wildcard(p, v), False),
    "ArnNotEquals": (lambda p, v: wildcard(p, v), True),
    "ArnNotLike": (lambda p, v: wildcard(p, v), True),
    "Bool": (lambda p, v: str(p).lower() == str(v).lower(), False),
}


def condition_matches(operator, block, context):
    qualifier = None
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
        if qualifier not in ("ForAnyValue", "ForAllValues"):
            raise Unsupported(f"condition qualifier {qualifier!r}")
    if_exists = operator.endswith("IfExists")
    if if_exists:
        operator = operator[: -len("IfExists")]
    for key, wanted in block.items():
        present = {k.lower(): v for k, v in context.items()}
        values = present.get(key.lower())
        wanted = [str(w) for w in as_list(wanted)]
        if operator == "Null":
            is_null = values is None or values == []
            if not all((w.lower() == "true") == is_null for w in wanted):
                return False
            continue
        if operator not in STRING_OPS:
            raise Unsupported(f"condition operator {operator!r}")
        test, negated = STRING_OPS[operator]
        if values is None or values == []:
            if if_exists or qualifier == "ForAllValues":
                continue
            # A missing key: a negated operator matches, a positive one does not.
            if negated:
                continue
            return False
        def one(value):
            hit = any(test(w, value) for w in wanted)
            return not hit if negated else hit
        if qualifier == "ForAllValues":
            ok = all(one(v) for v in values)
        else:
            ok = any(one(v) for v in values)
        if not ok:
            return False
    return True


def statement_matches(statement, request):
    if "Principal" in statement:
        if not principal_matches(statement["Principal"], request):
            return False
    elif "NotPrincipal" in statement:
        if principal_matches(statement["NotPrincipal"], request):
            return False
    else:
        raise Unsupported("a key policy statement without Principal")
    action = request["action"]
    if "Action" in statement:
        if not any(wildcard(a, action, True) for a in as_list(statement["Action"])):
            return False
    elif "NotAction" in statement:
        if any(wildcard(a, action, True) for a in as_list(statement["NotAction"])):
            return False
    resource = request["resource"]
    if "Resource" in statement:
        if not any(wildcard(r, resource) for r in as_list(statement["Resource"])):
            return False
    elif "NotResource" in statement:
        if any(wildcard(r, resource) for r in as_list(statement["NotResource"])):
            return False
    for operator, block in (statement.get("Condition") or {}).items():
        if not condition_matches(operator, block, request.get("context", {})):
            return False
    return True


def decide(policy, request):
    allowed = False
    for statement in as_list(policy.get("Statement")):
        if statement_matches(statement, request):
            if statement.get("Effect") == "Deny":
                return "deny"
            if statement.get("Effect") == "Allow":
                allowed = True
    return "allow" if allowed else "deny"


def main():
    data = json.load(sys.stdin)
    try:
        decisions = {r["name"]: decide(data["policy"], r) for r in data["requests"]}
    except Unsupported as error:
        print(json.dumps({"error": f"unsupported: {error}"}))
        return 1
    print(json.dumps({"decisions": decisions}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
