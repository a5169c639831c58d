using Xunit;

namespace MaeMl.Tests.Cli;

/// <summary>--weights takes a shipped model's name as MaePretrained.Load does (issue: the README's line failed under dotnet run).</summary>
[Collection("InteropCliConsole")]
public sealed class ShippedNameTests
{
    [Fact]
    public void WeightsTakeAShippedModelName()
    {
        var dir = TestImages.TempDir("shipped-name");
        var out1 = Path.Combine(dir, "encoder.onnx");
        var (code, output, error) = CliRunner.Run("export-onnx", "--weights", "cifar10-vit-tiny", "--out", out1);
        Assert.True(code == 0, error + output);
        Assert.True(File.Exists(out1));
        var (bad, _, badError) = CliRunner.Run("export-onnx", "--weights", "no-such-model", "--out", Path.Combine(dir, "x.onnx"));
        Assert.Equal(2, bad);
        Assert.Contains("no-such-model", badError);
    }
}
