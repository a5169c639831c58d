using MaeMl.Onnx;
using Xunit;

namespace MaeMl.Tests.Cli;

public class ExportOnnxCommandTests
{
    [Fact]
    public void ExportsAVerifiedEncoderAndRejectsBadOptions()
    {
        var path = Path.Combine(Path.GetTempPath(), $"maeml-cli-{Guid.NewGuid():N}.onnx");
        try
        {
            int rc = MaeMl.Cli.Program.Main(["export-onnx", "--model", "mae_vit_tiny_patch4_img32", "--out", path, "--pooling", "cls,mean", "--verify", "1"]);
            Assert.Equal(0, rc);
            var info = EncoderOnnxModelInfo.Read(path);
            Assert.Equal(32, info.ImageSize);
            Assert.Equal(new[] { EncoderPooling.Cls, EncoderPooling.Mean }, info.Outputs.Keys.OrderBy(k => k));
            Assert.Equal(192, info.OutputSize(EncoderPooling.Mean));

            Assert.Equal(2, MaeMl.Cli.Program.Main(["export-onnx", "--model", "mae_vit_tiny_patch4_img32", "--out", path, "--pooling", "max"]));
            Assert.Equal(2, MaeMl.Cli.Program.Main(["export-onnx", "--out", path]));
            Assert.Equal(2, MaeMl.Cli.Program.Main(["export-onnx", "--weights", path + ".missing.maeml", "--out", path]));
        }
        finally { File.Delete(path); }
    }
}
