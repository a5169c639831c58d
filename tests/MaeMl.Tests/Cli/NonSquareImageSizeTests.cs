using MaeMl.Cli;
using MaeMl.Model;
using MaeMl.Segmentation;
using Xunit;

namespace MaeMl.Tests.Cli;

/// <summary><c>--image-size WxH</c> of the dense commands: parsing, one-line errors, and segment-train/-eval at a non-square size.</summary>
[Collection("InteropCliConsole")]
public sealed class NonSquareImageSizeTests : IDisposable
{
    readonly string dir = TestImages.TempDir("dense-cli-nonsquare");
    public void Dispose() => Directory.Delete(dir, true);

    [Theory]
    [InlineData("40x24", 40, 24)]
    [InlineData("160X120", 160, 120)]
    [InlineData("64", 64, 64)]
    [InlineData(" 32x32 ", 32, 32)]
    public void ParsesWidthByHeightOrOneSide(string text, int width, int height) =>
        Assert.Equal(new InputSize(width, height), DenseTrainingOptionGroup.ParseImageSize(text, 4));

    [Theory]
    [InlineData("40x", "--image-size '40x' is not WxH or one side (e.g. 160x120 or 64)")]
    [InlineData("x24", "--image-size 'x24' is not WxH or one side (e.g. 160x120 or 64)")]
    [InlineData("40x24x2", "--image-size '40x24x2' is not WxH or one side (e.g. 160x120 or 64)")]
    [InlineData("-40x24", "--image-size '-40x24' is not WxH or one side (e.g. 160x120 or 64)")]
    [InlineData("0x10", "--image-size 0x10: both sides must be positive")]
    [InlineData("41x24", "--image-size 41x24: the width 41 is not a multiple of the patch size 4")]
    [InlineData("40x22", "--image-size 40x22: the height 22 is not a multiple of the patch size 4")]
    [InlineData("42", "--image-size 42 is not a multiple of the patch size 4")]
    public void ABadSizeGivesOneClearLine(string text, string message) =>
        Assert.Equal(message, Assert.Throws<CliException>(() => DenseTrainingOptionGroup.ParseImageSize(text, 4)).Message);

    static readonly string[] Tiny = ["--model", "mae_vit_tiny_patch4_img32", "--epochs", "1", "--batch-size", "4", "--pyramid-channels", "8", "--threads", "1"];

    [Fact]
    public void SegmentTrainAndEvalRunAtWidthByHeightAndDetectTrainRefusesIt()
    {
        var (images, labels, masks) = DenseTestData.Write(dir, 4);
        string model = Path.Combine(dir, "seg.maeml"), picture = Path.Combine(dir, "seg.png");
        var train = CliRunner.Run(["segment-train", .. Tiny, "--image-size", "40x24", "--train", images, "--masks", masks, "--val", images, "--val-masks", masks,
            "--classes", "3", "--min-scale", "0.7", "--out", model, "--picture", picture]);
        Assert.True(train.Code == 0, train.Out + train.Err);
        Assert.Contains("input 40x24 (10x6 patches)", train.Out);
        Assert.Contains("val: mIoU", train.Out);
        var (saved, _) = SegmentationModelFile.Load(model);
        using (saved) Assert.Equal(new InputSize(40, 24), saved.Config.Encoder.InputSize);
        Assert.True(new FileInfo(picture).Length > 0);

        var eval = CliRunner.Run("segment-eval", "--weights", model, "--val", images, "--val-masks", masks, "--stream");
        Assert.True(eval.Code == 0, eval.Out + eval.Err);
        Assert.Contains("4 images at 40x24", eval.Out);

        foreach (var (size, message) in new[] { ("40x", "is not WxH"), ("0x10", "both sides must be positive"), ("41x24", "the width 41 is not a multiple of the patch size 4") })
        {
            var bad = CliRunner.Run(["segment-train", .. Tiny, "--image-size", size, "--train", images, "--masks", masks, "--val", images, "--val-masks", masks]);
            Assert.Equal(2, bad.Code);
            Assert.Contains(message, bad.Err);
            Assert.Single(bad.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        }
        var detect = CliRunner.Run(["detect-train", .. Tiny, "--image-size", "40x24", "--train", images, "--labels", labels, "--val", images, "--val-labels", labels, "--names", "square,circle"]);
        Assert.Equal(2, detect.Code);
        Assert.Contains("detect-train takes a square --image-size (one number), got 40x24", detect.Err);
        Assert.Single(detect.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
