"""A stand-in for GitHub's pull-request API, for tests/bot.rs.

Every request it receives and every response it sends is validated against GitHub's published
OpenAPI description (npm @octokit/openapi) with openapi-core; a mismatch is recorded in the
state file's "violations", which the tests require to be empty. So the server cannot drift from
the real API's shapes: its responses are generated from the description's own schemas, then
given the test's values, then validated.

Usage: python github_server.py SPEC STATE
Prints "PORT <n>" once listening on 127.0.0.1. The state file (JSON) is the server's memory,
read and written on every request, so a test can read what happened and change the world
between runs: {"owner", "repo", "token", "pulls": [...], "faults": [...], "on_list": cmd,
"requests": [...], "violations": [...]}.
"""

import json
import re
import subprocess
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from openapi_core import OpenAPI, Config
from openapi_core.datatypes import RequestParameters
from openapi_schema_validator import OAS30Validator
from werkzeug.datastructures import Headers, ImmutableMultiDict

SPEC_PATH, STATE_PATH = sys.argv[1], sys.argv[2]
USED = [
    "/repos/{owner}/{repo}/pulls",
    "/repos/{owner}/{repo}/pulls/{pull_number}",
    "/repos/{owner}/{repo}/issues/{issue_number}/labels",
]
LOCK = threading.Lock()

with open(SPEC_PATH, encoding="utf-8") as f:
    SPEC = json.load(f)
# Only the operations ctfix uses (finding a path among a thousand is slow); every schema they
# reference stays.
SPEC["paths"] = {p: SPEC["paths"][p] for p in USED}


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target = SPEC
        for part in ref[2:].split("/"):
            target = target[part]
        node = target
    return node


def example(schema, depth=0):
    """The smallest value the schema accepts: required properties only."""
    schema = resolve(schema)
    if depth > 40:
        return None
    if "allOf" in schema:
        merged = {}
        for part in schema["allOf"]:
            value = example(part, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return example(schema[key][0], depth + 1)
    if schema.get("nullable"):
        return None
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: example(props.get(k, {}), depth + 1) for k in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "string":
        return {
            "date-time": "2026-11-30T12:00:00Z",
            "uri": "https://github.example/x",
            "email": "bot@example.com",
        }.get(schema.get("format"), "x")
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return False
    return None


def response_schema(path, method, status):
    operation = SPEC["paths"][path][method]
    response = resolve(operation["responses"][str(status)])
    return response["content"]["application/json"]["schema"]


def pull_json(state, pull, path, method, status, simple=False):
    schema = response_schema(path, method, status)
    if simple:
        schema = resolve(schema)["items"]
    value = example(schema)
    owner, repo = state["owner"], state["repo"]
    url = f"https://github.example/{owner}/{repo}/pull/{pull['number']}"
    value.update(
        {
            "number": pull["number"],
            "state": pull["state"],
            "title": pull["title"],
            "body": pull["body"],
            "html_url": url,
            "draft": pull.get("draft", False),
            "merged_at": "2026-11-30T12:00:00Z" if pull.get("merged") else None,
        }
    )
    value["head"]["ref"] = pull["head"]
    value["head"]["label"] = f"{owner}:{pull['head']}"
    value["base"]["ref"] = pull["base"]
    return value


class Request:
    """openapi-core's request protocol."""

    def __init__(self, host_url, method, path, query, headers, body):
        self.host_url = host_url
        self.method = method.lower()
        self.path = path
        self.full_url_pattern = host_url + path
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(query), header=Headers(headers), cookie=ImmutableMultiDict()
        )
        self.content_type = headers.get("Content-Type", "application/json").split(";")[0]
        self.body = body


class Response:
    """openapi-core's response protocol."""

    def __init__(self, status, headers, body):
        self.status_code = status
        self.headers = Headers(headers)
        self.content_type = "application/json"
        self.data = body


BASIC_ERROR = resolve({"$ref": "#/components/schemas/basic-error"})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.handle_api("GET")

    def do_POST(self):
        self.handle_api("POST")

    def do_PATCH(self):
        self.handle_api("PATCH")

    def handle_api(self, method):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with LOCK:
            with open(STATE_PATH, encoding="utf-8") as f:
                state = json.load(f)
            try:
                status, headers, answer, operation = self.answer(state, method, body)
            except Exception:  # a bug here must fail the test, not hang it
                state.setdefault("violations", []).append(traceback.format_exc())
                status, headers, answer, operation = 500, {}, {"message": "server bug"}, None
            data = json.dumps(answer).encode()
            self.validate(state, method, body, status, headers, data, operation)
            with open(STATE_PATH, "w", encoding="utf-8") as f:
                json.dump(state, f, indent=1)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def validate(self, state, method, body, status, headers, data, operation):
        violations = state.setdefault("violations", [])
        split = urlsplit(self.path)
        request = Request(
            HOST_URL,
            method,
            split.path,
            parse_qsl(split.query),
            dict(self.headers.items()),
            body,
        )
        try:
            OPENAPI.validate_request(request)
        except Exception as error:
            violations.append(f"request {method} {self.path}: {error!r} {getattr(error, '__cause__', '')!r}")
        path, verb = operation or (None, None)
        declared = path and str(status) in SPEC["paths"][path][verb]["responses"]
        if declared:
            try:
                OPENAPI.validate_response(request, Response(status, headers, data))
            except Exception as error:
                violations.append(f"response {status} to {method} {self.path}: {error!r} {getattr(error, '__cause__', '')!r}")
        else:
            # A status the description does not list for this operation (401, 429, a
            # rate-limit 403): GitHub answers those with its basic error.
            errors = [e.message for e in OAS30Validator(BASIC_ERROR).iter_errors(json.loads(data))]
            if errors or status < 400:
                violations.append(f"undeclared response {status} to {method} {self.path}: {errors}")

    def answer(self, state, method, body):
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query))
        state.setdefault("requests", []).append(
            {
                "method": method,
                "path": split.path,
                "query": query,
                "body": json.loads(body) if body else None,
                "authorization": self.headers.get("Authorization", ""),
            }
        )
        owner, repo = state["owner"], state["repo"]
        base = f"/repos/{owner}/{repo}"
        pulls_path, pull_path, labels_path = USED
        operation = None
        if split.path == base + "/pulls":
            operation = (pulls_path, method.lower())
        elif re.fullmatch(re.escape(base) + r"/pulls/\d+", split.path):
            operation = (pull_path, method.lower())
        elif re.fullmatch(re.escape(base) + r"/issues/\d+/labels", split.path):
            operation = (labels_path, method.lower())
        for fault in list(state.get("faults", [])):
            if fault["method"] == method and split.path.startswith(fault["path"]):
                state["faults"].remove(fault)
                return fault["status"], fault.get("headers", {}), fault["body"], operation
        if self.headers.get("Authorization") != f"Bearer {state['token']}":
            return 401, {}, {"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}, operation
        pulls = state.setdefault("pulls", [])
        if operation == (pulls_path, "get"):
            if state.get("on_list"):
                subprocess.run(state.pop("on_list"), shell=True, check=True)
            head = query.get("head", "")
            wanted = query.get("state", "open")
            found = [
                p
                for p in pulls
                if f"{owner}:{p['head']}" == head and wanted in ("all", p["state"])
            ]
            return 200, {}, [pull_json(state, p, pulls_path, "get", 200, simple=True) for p in found], operation
        if operation == (pulls_path, "post"):
            request = json.loads(body)
            if any(p["head"] == request["head"] and p["state"] == "open" for p in pulls):
                return 422, {}, {
                    "message": "Validation Failed",
                    "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
                    "errors": [{"resource": "PullRequest", "code": "custom", "message": f"A pull request already exists for {owner}:{request['head']}."}],
                }, operation
            pull = {
                "number": state.get("next", 1),
                "state": "open",
                "merged": False,
                "title": request["title"],
                "body": request.get("body", ""),
                "head": request["head"],
                "base": request["base"],
                "draft": request.get("draft", False),
                "labels": [],
            }
            state["next"] = pull["number"] + 1
            pulls.append(pull)
            return 201, {}, pull_json(state, pull, pulls_path, "post", 201), operation
        number = int(split.path.split("/")[-1 if operation and operation[0] == pull_path else -2])
        pull = next((p for p in pulls if p["number"] == number), None)
        if pull is None:
            return 404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, operation
        if operation == (pull_path, "patch"):
            request = json.loads(body)
            pull.update({k: v for k, v in request.items() if k in ("title", "body")})
            return 200, {}, pull_json(state, pull, pull_path, "patch", 200), operation
        if operation == (labels_path, "post"):
            request = json.loads(body)
            for label in request.get("labels", []):
                if label not in pull["labels"]:
                    pull["labels"].append(label)
            item = resolve(response_schema(labels_path, "post", 200))["items"]
            answer = []
            for i, name in enumerate(pull["labels"]):
                value = example(item)
                value.update({"id": i + 1, "name": name})
                answer.append(value)
            return 200, {}, answer, operation
        return 404, {}, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}, operation


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
HOST_URL = f"http://127.0.0.1:{server.server_address[1]}"
SPEC["servers"] = [{"url": HOST_URL}]
OPENAPI = OpenAPI.from_dict(SPEC, config=Config(spec_validator_cls=None))
print(f"PORT {server.server_address[1]}", flush=True)
server.serve_forever()
