#!/usr/bin/env python3
"""Brings src/MaeMl/PublicAPI.*.txt in line with the code after a deliberate API change: builds, then adds every symbol the
analyzer reports as undeclared (RS0016) to PublicAPI.Unshipped.txt and retires every declared symbol that is gone (RS0017):
removed from Unshipped when it was added since the last release, marked *REMOVED* in Unshipped when it shipped."""
import re, subprocess, sys, pathlib
root = pathlib.Path(__file__).resolve().parent.parent
proj = root / "src/MaeMl"
out = subprocess.run(["dotnet", "build", str(proj), "-c", "Release", "--no-incremental", "-v", "q", "-nologo", "-m:1"],
                     capture_output=True, text=True).stdout
pat = re.compile(r"warning (RS001[67]): Symbol '(.+?)' is (?:not part of the declared public API|part of the declared API, but is either not public or could not be found)")
added, removed = set(), set()
for line in out.splitlines():
    m = pat.search(line)
    if m: (added if m.group(1) == "RS0016" else removed).add(m.group(2))
shipped = (proj / "PublicAPI.Shipped.txt").read_text().splitlines()
unshipped = (proj / "PublicAPI.Unshipped.txt").read_text().splitlines()

new_unshipped = [l for l in unshipped if l not in removed]
for sym in sorted(removed):
    if sym in shipped and "*REMOVED*" + sym not in new_unshipped: new_unshipped.append("*REMOVED*" + sym)
for sym in sorted(added):
    if sym not in new_unshipped: new_unshipped.append(sym)
header = [l for l in new_unshipped if l.startswith("#")]
body = sorted(set(l for l in new_unshipped if l and not l.startswith("#")), key=lambda l: l.replace("*REMOVED*", ""))
(proj / "PublicAPI.Unshipped.txt").write_text("\n".join(header + body) + "\n")
print(f"{len(added)} symbols declared, {len(removed)} retired")
