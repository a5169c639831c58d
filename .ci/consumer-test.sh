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
# Program.cs loads the shipped cifar10-vit-tiny weights: ask for them in the output folder (opt-in)
sed -i 's|<PropertyGroup>|<PropertyGroup>\n    <MaeMlCopyPretrained>true</MaeMlCopyPretrained>|' Consumer.csproj
cp "$repo/.ci/consumer/Program.cs" Program.cs
dotnet run -c Release
test -f bin/Release/net10.0/pretrained/cifar10-vit-tiny.maeml || { echo "MaeMlCopyPretrained=true did not copy the shipped weights"; exit 1; }

# the `maeml` tool, installed from the same feed, must run its ONNX Runtime and TorchSharp commands on this machine
dotnet tool install MaeMl.Cli --version "$version" --tool-path "$work/tools" --add-source "$feed" >/dev/null
maeml="$work/tools/maeml"
tooldir="$work/tools/.store/maeml.cli/$version/maeml.cli/$version/tools/net10.0/linux-x64"
test -f "$tooldir/libonnxruntime.so" || { echo "the tool package has no libonnxruntime.so"; exit 1; }
if [ -e "$tooldir/libtorch_python.so" ] || [ -e "$tooldir/onnxruntime.dll" ]; then echo "the tool package carries unused native files"; exit 1; fi
"$maeml" info > "$work/info.txt"
head -3 "$work/info.txt"
grep -q '^ONNX Runtime: 1\.' "$work/info.txt" || { echo "the tool's ONNX Runtime does not load"; exit 1; }
"$maeml" inspect "$repo/pretrained/cifar10-vit-tiny.maeml" > "$work/inspect.txt"
head -3 "$work/inspect.txt"
"$maeml" export-onnx --weights "$repo/pretrained/cifar10-vit-tiny.maeml" --out "$work/encoder.onnx" --verify 2
# ML.NET (LoadImages + ApplyMaeEncoder + LbfgsMaximumEntropy) inside the tool, on a few of the bundled images
"$maeml" linprobe --trainer mlnet --weights "$repo/pretrained/cifar10-vit-tiny.maeml" --train "$repo/samples/data/cifar10-mini/train" \
    --val "$repo/samples/data/cifar10-mini/test" --limit-per-class 10 --val-limit-per-class 5 --pooling mean
# a short pretraining run (a small model, one epoch over 64 of the bundled images)
"$maeml" pretrain --data "$repo/samples/data/cifar10-mini/train" --out "$work/pretrain" --limit 64 --epochs 1 --warmup-epochs 0 \
    --batch-size 32 --depth 2 --embed-dim 64 --heads 2 --decoder-embed-dim 32 --decoder-depth 1 --decoder-heads 2 \
    --precision Float32
test -s "$work/pretrain/checkpoint-last.maeml" || { echo "the tool's pretrain wrote no checkpoint"; exit 1; }
echo "maeml tool OK"
