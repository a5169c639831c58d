using MaeMl.Cli.Commands;
using Xunit;

namespace MaeMl.Tests.Cli;

/// <summary><c>maeml bench --pytorch PYTHON</c>: the official step's rate comes from the child process of the same run, is printed beside
/// MaeMl's rates as ratios, and a Python that fails says so in the line instead of a number. A stand-in "python" (a shell script that
/// prints what tools/pytorch/bench_official.py prints, and records its arguments) keeps the test free of PyTorch.</summary>
[Collection("InteropCliConsole")]
public sealed class BenchPyTorchTests
{
    [Fact]
    public void TheOfficialRateIsMeasuredWithTheSameSettingsAndPrintedBesideOurs()
    {
        if (OperatingSystem.IsWindows()) return;   // the stand-in Python is a shell script
        var dir = TestImages.TempDir("bench-pytorch");
        var args = Path.Combine(dir, "args.txt");
        var python = Path.Combine(dir, "python");
        File.WriteAllText(python, $"#!/bin/sh\necho \"$@\" > '{args}'\necho 'torch warnings on stdout'\n" +
                                  "echo '{\"images_per_s\": 50.0, \"seconds_per_step\": 2.56, \"torch\": \"1.13\", \"threads\": 2}'\n");
        File.SetUnixFileMode(python, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var failing = Path.Combine(dir, "failing");
        File.WriteAllText(failing, "#!/bin/sh\necho 'ModuleNotFoundError: No module named torch' >&2\nexit 1\n");
        File.SetUnixFileMode(failing, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);

        var script = OfficialPyTorch.FindScript();
        Assert.True(File.Exists(script), script);
        var (stdout, stderr) = (Console.Out, Console.Error);
        using var o = new StringWriter();
        Console.SetOut(o);
        try
        {
            new OfficialPyTorch(python, script).Report(TestModels.Tiny, batch: 128, steps: 8, warmup: 3, ("float32", 100.0), ("BFloat16", 125.0));
            new OfficialPyTorch(failing, script).Report(TestModels.Tiny, batch: 128, steps: 8, warmup: 3, ("float32", 100.0));
        }
        finally { Console.SetOut(stdout); }
        var lines = o.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("50.00 img/s", lines[0]);
        Assert.Contains("MaeMl float32 2.00x, MaeMl BFloat16 2.50x", lines[0]);
        Assert.Contains("measured now", lines[0]);
        Assert.Contains("not measured", lines[1]);
        Assert.Contains("No module named torch", lines[1]);
        var passed = File.ReadAllText(args);
        foreach (var a in new[] { "--img-size 16", "--patch-size 4", "--embed-dim 32", "--depth 2", "--num-heads 2", "--decoder-embed-dim 16",
                                  "--batch-size 128", "--steps 8", "--warmup 3", "--mlp-ratio 4" })
            Assert.Contains(a, passed);
    }
}
