using MaeMl.MLNet;
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

    /// <summary>A classifier checkpoint is exported with its head and class names, and <c>ApplyMaeClassifier</c> reads them back.</summary>
    [Fact]
    public void ExportsAClassifierWithItsClassNames()
    {
        var dir = TestImages.TempDir("export-cls");
        var config = TestModels.Tiny;
        using var vit = new MaeMl.Model.VisionTransformer(new MaeMl.Model.VitClassifierConfig(config, 3));
        var file = Path.Combine(dir, "classifier.maeml");
        MaeMl.Checkpoints.ClassifierCheckpoint.Save(file, vit, ["red", "green", "blue"]);
        var onnx = Path.Combine(dir, "classifier.onnx");
        Assert.Equal(0, MaeMl.Cli.Program.Main(["export-onnx", "--weights", file, "--out", onnx, "--verify", "1"]));
        var estimator = new Microsoft.ML.MLContext().Transforms.ApplyMaeClassifier(onnx);
        Assert.Equal(["red", "green", "blue"], estimator.ClassNames);
        Assert.Equal(16, estimator.ImageSize.Width);
        Assert.Equal(2, MaeMl.Cli.Program.Main(["export-onnx", "--weights", file, "--out", onnx, "--pooling", "cls"]));   // encoder-only option
    }
}
