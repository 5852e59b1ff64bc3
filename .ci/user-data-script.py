"""Prints the shell script part of the launch template's MIME user data in a CloudFormation
template, with each ${Name} of its Fn::Sub replaced by a placeholder, for shellcheck.

    python3 .ci/user-data-script.py templates/cfn/biojob.yaml > user-data.sh
"""

import re
import sys

import yaml


class Loader(yaml.SafeLoader):
    """Keeps CloudFormation short tags (!Sub, !Ref, ...) as their plain values."""


def _any_tag(loader, _suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_mapping(node, deep=True)


Loader.add_multi_constructor("!", _any_tag)

template = yaml.load(open(sys.argv[1], encoding="utf-8"), Loader=Loader)
scripts = []
for resource in template["Resources"].values():
    if resource["Type"] != "AWS::EC2::LaunchTemplate":
        continue
    user_data = resource["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]
    text = user_data if isinstance(user_data, str) else user_data[0]
    text = re.sub(r"\$\{([A-Za-z0-9:]+)\}", lambda m: "PLACEHOLDER_" + m.group(1).replace(":", "_"), text)
    parts = re.split(r"^--==BIOJOB==(?:--)?$", text, flags=re.M)
    for part in parts:
        if "text/x-shellscript" in part:
            scripts.append(part.split("\n\n", 1)[1])
if len(scripts) != 1:
    sys.exit(f"expected one shell script in the user data, found {len(scripts)}")
sys.stdout.write(scripts[0].lstrip("\n"))
