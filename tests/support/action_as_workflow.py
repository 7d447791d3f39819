"""Turns a composite action (action.yml) into a reusable workflow with the same inputs and
steps, so actionlint, which checks workflows, checks the action's expressions and steps too.

Usage: python action_as_workflow.py ACTION_YML > workflow.yml (JSON, which is YAML).
"""

import json
import sys

import yaml

with open(sys.argv[1], encoding="utf-8") as f:
    action = yaml.safe_load(f)
assert action["runs"]["using"] == "composite", "a composite action"
inputs = {}
for name, spec in action.get("inputs", {}).items():
    default = spec.get("default", "")
    # Defaults that are expressions are the workflow's business: github.* stays valid there.
    inputs[name] = {"description": spec.get("description", ""), "type": "string",
                    "required": bool(spec.get("required", False)), "default": default}
workflow = {
    "name": action["name"],
    "on": {"workflow_call": {"inputs": inputs}},
    "jobs": {"action": {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}},
}
print(json.dumps(workflow, indent=1))
