#!/usr/bin/env bash
# Packs MaeMl, installs it from a local folder feed into a fresh console app, and runs that app.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
version="0.1.0-ci.$(date +%Y%m%d%H%M%S)"   # unique, so the NuGet cache never serves a stale build
feed="$repo/artifacts/packages"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
dotnet pack "$repo/src/MaeMl" -c Release -o "$feed" -p:Version="$version" --nologo -v q
dotnet pack "$repo/src/MaeMl.Cli" -c Release -o "$feed" -p:Version="$version" --nologo -v q
cd "$work"
dotnet new console -n Consumer -o Consumer --framework net10.0 >/dev/null
cd Consumer
cat > nuget.config <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="local" value="$feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
</configuration>
XML
dotnet add package MaeMl --version "$version" >/dev/null
# the consumer chooses its ONNX Runtime: here the CPU one
dotnet add package Microsoft.ML.OnnxRuntime --version 1.31.0 >/dev/null
cp "$repo/.ci/consumer/Program.cs" Program.cs
dotnet run -c Release

# the `maeml` tool, installed from the same feed
dotnet tool install MaeMl.Cli --version "$version" --tool-path "$work/tools" --add-source "$feed" >/dev/null
"$work/tools/maeml" info
"$work/tools/maeml" inspect "$repo/pretrained/cifar10-vit-tiny.pth" > "$work/inspect.txt"
head -3 "$work/inspect.txt"
