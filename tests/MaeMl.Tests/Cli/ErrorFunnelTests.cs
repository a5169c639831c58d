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
}
