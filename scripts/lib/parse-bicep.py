"""Parses every .bicep file under the given folder with pycep (the parser checkov uses) and fails
on the first file it cannot parse. checkov itself reports a parse error and still exits 0, so a
template it could not read would pass unchecked."""

import sys
from pathlib import Path

from pycep import BicepParser

root = Path(sys.argv[1])
files = sorted(root.rglob("*.bicep"))
if not files:
    sys.exit(f"no .bicep files under {root}")
parser = BicepParser()
failed = []
for path in files:
    try:
        parser.parse(file_path=path)
    except Exception as error:  # pycep raises lark's errors, which share no base class worth naming
        failed.append(f"{path}: {error}")
for failure in failed:
    print(failure, file=sys.stderr)
print(f"{len(files) - len(failed)} of {len(files)} .bicep files parse")
sys.exit(1 if failed else 0)
