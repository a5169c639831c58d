using MaeMl.Cli;
using Xunit;

namespace MaeMl.Tests.Cli;

/// <summary><c>segment-train/-eval</c> and <c>detect-train/-eval</c> on tiny generated folders, in-process.</summary>
[Collection("InteropCliConsole")]
public sealed class DenseCommandTests : IDisposable
{
    readonly string dir = TestImages.TempDir("dense-cli");
    public void Dispose() => Directory.Delete(dir, true);

    static (int Code, string Out, string Err) Run(params string[] args) => CliRunner.Run(args);

    static readonly string[] Tiny = ["--model", "mae_vit_tiny_patch4_img32", "--image-size", "32", "--epochs", "1", "--batch-size", "4", "--pyramid-channels", "8", "--threads", "1"];

    [Fact]
    public void SegmentTrainThenEvalWithPicture()
    {
        var (images, _, masks) = DenseTestData.Write(dir, 6);
        string model = Path.Combine(dir, "seg.model"), picture = Path.Combine(dir, "seg.png");
        var train = Run(new[] { "segment-train" }.Concat(Tiny).Concat(new[] {
            "--train", images, "--masks", masks, "--val", images, "--val-masks", masks, "--classes", "3", "--names", "bg,square,circle", "--out", model }).ToArray());
        Assert.True(train.Code == 0, train.Out + train.Err);
        Assert.Contains("val: mIoU", train.Out);
        var eval = Run("segment-eval", "--weights", model, "--val", images, "--val-masks", masks, "--picture", picture, "--stream");   // decoded batch by batch
        var inMemory = Run("segment-eval", "--weights", model, "--val", images, "--val-masks", masks);
        Assert.Equal(System.Text.RegularExpressions.Regex.Match(inMemory.Out, @"mIoU [^,]*").Value, System.Text.RegularExpressions.Regex.Match(eval.Out, @"mIoU [^,]*").Value);
        Assert.True(eval.Code == 0, eval.Out + eval.Err);
        Assert.Contains("val: mIoU", eval.Out);
        Assert.True(new FileInfo(picture).Length > 0);
    }

    [Fact]
    public void SegmentTrainWithTheUperNetHeadSavesAUperNetModel()
    {
        var (images, _, masks) = DenseTestData.Write(dir, 4);
        var model = Path.Combine(dir, "uper.model");
        string[] Args(string head) => new[] { "segment-train" }.Concat(Tiny).Concat(new[] {
            "--train", images, "--masks", masks, "--val", images, "--val-masks", masks, "--classes", "3", "--head", head, "--out", model }).ToArray();
        var train = Run(Args("UperNet"));
        Assert.True(train.Code == 0, train.Out + train.Err);
        Assert.Contains("head UperNet", train.Out);
        var (loaded, _) = MaeMl.Segmentation.SegmentationModelFile.Load(model);
        using (loaded) Assert.Equal(MaeMl.Segmentation.SegmentationHeadKind.UperNet, loaded.Config.Head);
        var bad = Run(Args("uper"));
        Assert.Equal(2, bad.Code);
        Assert.Contains("use linear, pyramid or upernet", bad.Err);
    }

    [Fact]
    public void DetectTrainThenEvalWithPictureAndErrorsInOneLine()
    {
        var (images, labels, _) = DenseTestData.Write(dir, 6);
        string model = Path.Combine(dir, "det.model"), picture = Path.Combine(dir, "det.png");
        var train = Run(new[] { "detect-train" }.Concat(Tiny).Concat(new[] {
            "--train", images, "--labels", labels, "--val", images, "--val-labels", labels, "--names", "square,circle", "--head-convs", "1", "--max-detections", "3", "--out", model }).ToArray());
        Assert.True(train.Code == 0, train.Out + train.Err);
        Assert.Contains("val: mAP@[.5:.95]", train.Out);
        Assert.Contains("at most 3 an image", train.Out);
        var eval = Run("detect-eval", "--weights", model, "--val", images, "--val-labels", labels, "--names", "square,circle", "--picture", picture);
        Assert.True(eval.Code == 0, eval.Out + eval.Err);
        Assert.Contains("AP50", eval.Out);
        var detections = System.Text.RegularExpressions.Regex.Match(eval.Out, @"(\d+) detections\)");
        Assert.True(detections.Success && int.Parse(detections.Groups[1].Value) <= 3 * 6, eval.Out);   // the saved model keeps its cap: 3 an image
        Assert.True(new FileInfo(picture).Length > 0);

        var noNames = Run(new[] { "detect-train" }.Concat(Tiny).Concat(new[] { "--train", images, "--labels", labels, "--val", images, "--val-labels", labels }).ToArray());
        Assert.Equal(2, noNames.Code);
        Assert.Contains("--names", noNames.Err);
        var badThreshold = Run(new[] { "detect-train" }.Concat(Tiny).Concat(new[] { "--train", images, "--labels", labels, "--val", images, "--val-labels", labels, "--names", "a,b", "--score-threshold", "1.5" }).ToArray());
        Assert.Equal(2, badThreshold.Code);
        Assert.Contains("ScoreThreshold", badThreshold.Err);
        var wrongFile = Run("segment-eval", "--weights", model, "--val", images, "--val-masks", labels);
        Assert.Equal(2, wrongFile.Code);
        Assert.Contains("not a segmentation model", wrongFile.Err);
    }

    [Fact]
    public void SegmentTrainWithVitDetAttentionFromMaeWeightsSavesExportsAndVerifies()
    {
        var (images, labels, masks) = DenseTestData.Write(dir, 4);
        string model = Path.Combine(dir, "vitdet.model"), onnx = Path.Combine(dir, "vitdet.onnx");
        // the official fixture MAE (patch 4, 2 blocks) at 24 px: a 6 x 6 grid, windows of 4 padded to 8 x 8, block 1 global
        var mae = Path.Combine(dir, "mae.maeml");
        Assert.Equal(0, Run("convert", "--weights", OfficialFixture.PathOf("checkpoint-full.pth"), "--out", mae, "--heads", "2", "--decoder-heads", "2").Code);
        var train = Run("segment-train", "--weights", mae, "--image-size", "24", "--epochs", "1", "--batch-size", "2",
            "--pyramid-channels", "8", "--threads", "1", "--window-size", "4", "--global-blocks", "1", "--rel-pos", "--drop-path", "0.1",
            "--train", images, "--masks", masks, "--val", images, "--val-masks", masks, "--classes", "3", "--out", model);
        Assert.True(train.Code == 0, train.Out + train.Err);
        Assert.Contains("backbone: window attention 4x4, global blocks [1], relative positions", train.Out);
        Assert.Contains("4 backbone tensors are not in the weights and keep their zero init", train.Out);
        using (var saved = MaeMl.Segmentation.SegmentationModelFile.Load(model).Model)
        {
            var attention = saved.Config.Attention!;
            Assert.Equal((4, true, "1"), (attention.WindowSize, attention.RelativePositions, string.Join(",", attention.GlobalBlocks)));
        }
        var export = Run("export-onnx", "--weights", model, "--out", onnx, "--verify", "2", "--threads", "1");
        Assert.True(export.Code == 0, export.Out + export.Err);

        var noWindow = Run("segment-train", "--model", "mae_vit_tiny_patch4_img32", "--global-blocks", "1", "--train", images, "--masks", masks, "--val", images, "--val-masks", masks, "--classes", "3");
        Assert.True(noWindow.Code == 2, noWindow.Out + noWindow.Err);
        Assert.Contains("--global-blocks needs --window-size", noWindow.Err);
        var outside = Run("detect-train", "--model", "mae_vit_tiny_patch4_img32", "--window-size", "4", "--global-blocks", "2,9", "--image-size", "32",
            "--train", images, "--labels", labels, "--val", images, "--val-labels", labels, "--names", "square,circle");
        Assert.True(outside.Code == 2, outside.Out + outside.Err);
        Assert.Contains("global block 9 is not a block", outside.Err);
    }

    [Fact]
    public void DenseCheckBuildsTrainsAndRunsBothExportsWithWindows()
    {
        var run = Run("dense-check", "--model", "mae_vit_tiny_patch4_img32", "--image-size", "32", "--pyramid-channels", "8", "--head-convs", "1",
            "--window-size", "3", "--rel-pos", "--threads", "1", "--out", dir);
        Assert.True(run.Code == 0, run.Out + run.Err);
        Assert.Contains("backbone: window attention 3x3, global blocks [1,2,4,5], relative positions", run.Out);
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(run.Out, "ONNX Runtime ran it").Count);   // the detector (with det_image_size) and the segmenter
        Assert.Empty(Directory.GetFiles(dir, "*.onnx"));
    }
}
