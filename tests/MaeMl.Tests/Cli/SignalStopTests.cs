using System.Diagnostics;
using MaeMl.Checkpoints;
using MaeMl.Training;
using Xunit;

namespace MaeMl.Tests.Cli;

/// <summary>SIGTERM (what a scheduler or <c>kill</c> sends) and SIGINT (Ctrl+C) stop <c>maeml</c>'s training commands with a checkpoint.</summary>
public class SignalStopTests
{
    [Fact]
    public void SigtermStopsPretrainingWithACheckpointAndExitCode143()
    {
        if (OperatingSystem.IsWindows()) return;   // no kill(1); PosixSignalRegistration maps Ctrl+C there
        var dir = TestImages.TempDir("sigterm");
        var images = Path.Combine(dir, "images");
        TestImages.Write(images, 64, size: 32);
        var run = Path.Combine(dir, "run");
        // in a process of its own: the signal goes to that process only
        var cli = Path.Combine(AppContext.BaseDirectory, "MaeMl.Cli");
        var start = new ProcessStartInfo(cli, ["pretrain", "--data", images, "--out", run, "--model", "mae_vit_tiny_patch4_img32", "--epochs", "200",
            "--batch-size", "8", "--threads", "1", "--precision", "Float32"]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var metrics = Path.Combine(run, "metrics.jsonl");
        var waited = Stopwatch.StartNew();
        while (StepLines(metrics) < 3 && !process.HasExited && waited.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(100);
        if (process.HasExited) Assert.Fail($"the run ended before the signal: {stdout.Result}{stderr.Result}");
        if (StepLines(metrics) < 3) { process.Kill(); Assert.Fail("no training steps within 2 minutes"); }

        using (var kill = Process.Start(new ProcessStartInfo("kill", ["-TERM", process.Id.ToString()]) { UseShellExecute = false })!) kill.WaitForExit();
        if (!process.WaitForExit(TimeSpan.FromMinutes(1))) { process.Kill(); Assert.Fail("the run did not stop within a minute of SIGTERM"); }
        Assert.True(process.ExitCode == 143, $"exit code {process.ExitCode}: {stdout.Result}{stderr.Result}");
        Assert.Contains("SIGTERM received", stderr.Result);
        Assert.Contains("cancelled at epoch", stderr.Result);
        var header = MaeCheckpoint.ReadHeader(Path.Combine(run, Pretrainer.LastCheckpointName));
        int epoch = header.Training["epoch"]!.GetValue<int>(), step = header.Training["step_in_epoch"]!.GetValue<int>();
        Assert.True(epoch * 8 + step >= 3, $"checkpoint at epoch {epoch}, step {step}: before the steps that had been logged");
        Assert.True(header.HasOptimizer);
    }

    static int StepLines(string path)
    {
        if (!File.Exists(path)) return 0;
        using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete));
        int n = 0;
        for (string? line; (line = reader.ReadLine()) is not null;) if (line.Contains("\"type\":\"step\"")) n++;
        return n;
    }
}
