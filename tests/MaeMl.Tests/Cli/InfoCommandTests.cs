using MaeMl.Cli.Commands;
using Xunit;

namespace MaeMl.Tests.Cli;

/// <summary><c>maeml info</c> says which platform the tool supports and whether ONNX Runtime's native library loads.</summary>
[Collection("InteropCliConsole")]
public class InfoCommandTests
{
    [Fact]
    public void PrintsSupportedRuntimeAndOnnxRuntime()
    {
        var (code, output, error) = CliRunner.Run("info");
        Assert.True(code == 0, error);
        Assert.Equal("linux-x64", InfoCommand.BuiltRuntimeIdentifier);
        Assert.Contains("built for linux-x64 (supported: linux-x64)", output);
        Assert.Matches(@"(?m)^ONNX Runtime: 1\.\d+\.\d+, providers .*CPUExecutionProvider", output);
        Assert.DoesNotContain("not loadable", output);
        Assert.Contains("mae_vit_tiny_patch4_img32", output);
    }
}
