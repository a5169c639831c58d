using System.Diagnostics;
using Xunit;

namespace MaeMl.Tests.Cli;

/// <summary>Every failure of the maeml tool is one line naming the file and the problem, exit code 2; --verbose adds the stack trace.</summary>
[Collection("InteropCliConsole")]
public class ErrorFunnelTests
{
    [Fact]
    public void FailuresAreOneLineWithExitCodeTwo()
    {
        var dir = TestImages.TempDir("funnel");
        var pipe = Path.Combine(dir, "pipe.pth");
        using (var p = Process.Start(new ProcessStartInfo("mkfifo", [pipe]) { UseShellExecute = false })!) p.WaitForExit();
        var garbage = Path.Combine(dir, "garbage.pth");
        File.WriteAllText(garbage, "not weights");
        foreach (var file in new[] { pipe, garbage })
        {
            var (code, _, err) = CliRunner.Run("inspect", file);
            Assert.Equal(2, code);
            Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.StartsWith("maeml: ", err);
            Assert.Contains(Path.GetFileName(file), err);
        }
        var (vcode, _, verr) = CliRunner.Run("inspect", garbage, "--verbose");
        Assert.Equal(2, vcode);
        Assert.Contains("   at ", verr);

        Assert.Equal("disk on fire (InvalidOperationException; run with --verbose for details)", MaeMl.Cli.Program.OneLine(new InvalidOperationException("disk on fire")));
        Assert.Equal("'x.pth' is bad", MaeMl.Cli.Program.OneLine(new AggregateException(new InvalidDataException("'x.pth' is bad"))));
    }

    [Fact]
    public void CudaWithoutACudaLibTorchIsOneLineOnEveryTrainingCommand()
    {
        var dir = TestImages.TempDir("device");
        var images = Path.Combine(dir, "images");
        TestImages.Write(images, 4, classes: 2);
        string[][] commands =
        [
            ["pretrain", "--data", images, "--out", Path.Combine(dir, "p"), "--model", "mae_vit_tiny_patch4_img32", "--epochs", "1", "--device", "cuda"],
            ["finetune", "--train", images, "--out", Path.Combine(dir, "f"), "--model", "mae_vit_tiny_patch4_img32", "--epochs", "1", "--device", "cuda:0"],
            ["linprobe", "--train", images, "--out", Path.Combine(dir, "l"), "--model", "mae_vit_tiny_patch4_img32", "--epochs", "1", "--device", "cuda"],
        ];
        foreach (var args in commands)
        {
            var (code, _, err) = CliRunner.Run(args);
            Assert.True(code == 2, $"{args[0]}: exit {code}, {err}");
            Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
            Assert.Contains("TorchSharp-cuda-linux", err);
        }
        var (bad, _, badErr) = CliRunner.Run(["pretrain", "--data", images, "--out", Path.Combine(dir, "q"), "--model", "mae_vit_tiny_patch4_img32", "--device", "gpu"]);
        Assert.Equal(2, bad);
        Assert.Contains("unknown device 'gpu'", badErr);
    }
}
