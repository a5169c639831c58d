using MaeMl.Detection;
using MaeMl.MLNet;
using MaeMl.Segmentation;
using MaeMl.Tests.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Cli;

/// <summary><c>maeml export-onnx --weights</c> of a detector and a segmenter file (the kind read from the file's header), with
/// <c>--verify</c>, and the exported files served by ApplyMaeDetector / ApplyMaeSegmenter with the file's class names.</summary>
[Collection("InteropCliConsole")]
public sealed class ExportOnnxDenseTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = TestImages.TempDir("export-dense");
    public void Dispose() => Directory.Delete(dir, true);

    public sealed class PathRow { public string ImagePath { get; set; } = ""; }

    IDataView Images(MLContext ml, int count)
    {
        var images = DenseTestData.WriteBoxImages(Path.Combine(dir, "images"), count, ["a", "b"]);
        var data = ml.Data.LoadFromEnumerable(images.Select(i => new PathRow { ImagePath = i.Path }));
        return ml.Transforms.LoadImages("Image", null, "ImagePath").Fit(data).Transform(data);
    }

    [Fact]
    public void DetectorFileExportsVerifiesAndServesInMLNet()
    {
        string file = Path.Combine(dir, "det.model"), onnx = Path.Combine(dir, "det.onnx");
        lock (TorchRng.Lock)
        {
            manual_seed(7);
            using var model = new DetectionModel(new DetectionConfig(DenseTestData.TinyEncoder(32), 2, PyramidChannels: 8, HeadConvs: 1) { ScoreThreshold = 0.005f, MaxDetections = 20 });
            OnnxTestModels.Perturb(model);
            DetectionModelFile.Save(model, file, ["cat", "dog"]);
        }
        var run = CliRunner.Run("export-onnx", "--weights", file, "--out", onnx, "--verify", "3", "--threads", "1");
        output.WriteLine(run.Out + run.Err);
        Assert.True(run.Code == 0, run.Out + run.Err);
        Assert.Contains("selection identical to FcosPostprocess", run.Out);
        Assert.Contains("raw scores max abs", run.Out);

        var ml = new MLContext(0);
        var data = Images(ml, 3);
        var estimator = ml.Transforms.ApplyMaeDetector(onnx);
        Assert.Equal(["cat", "dog"], estimator.ClassNames);   // from the file's metadata
        var scored = estimator.Fit(data).Transform(data);
        var counts = scored.GetColumn<VBuffer<float>>("Score").Select(v => v.Length).ToArray();
        Assert.Equal(counts.Select(c => 4 * c), scored.GetColumn<VBuffer<float>>("PredictedBoundingBoxes").Select(v => v.Length));
        Assert.All(counts, c => Assert.InRange(c, 0, 20));

        Assert.Equal(2, CliRunner.Run("export-onnx", "--weights", file, "--out", onnx, "--pooling", "cls").Code);
        Assert.Equal(2, CliRunner.Run("export-onnx", "--weights", file, "--out", onnx, "--model", "mae_vit_tiny_patch4_img32").Code);
    }

    [Theory]
    [InlineData(SegmentationHeadKind.Pyramid)]
    [InlineData(SegmentationHeadKind.Linear)]
    [InlineData(SegmentationHeadKind.UperNet)]
    public void SegmenterFileExportsVerifiesAndServesInMLNetAtTheImageSize(SegmentationHeadKind head)
    {
        string file = Path.Combine(dir, "seg.model"), onnx = Path.Combine(dir, "seg.onnx");
        lock (TorchRng.Lock)
        {
            manual_seed(8);
            using var model = new SegmentationModel(new SegmentationConfig(DenseTestData.TinyEncoder(32), 3, head, PyramidChannels: 8));
            OnnxTestModels.Perturb(model);
            SegmentationModelFile.Save(model, file, ["bg", "square", "circle"], 255);
        }
        var run = CliRunner.Run("export-onnx", "--weights", file, "--out", onnx, "--verify", "3", "--threads", "1");
        output.WriteLine(run.Out + run.Err);
        Assert.True(run.Code == 0, run.Out + run.Err);
        Assert.Contains("resize exact", run.Out);
        Assert.Contains("(0 differing pixels not at a tie)", run.Out);

        var ml = new MLContext(0);
        var data = Images(ml, 3);
        var estimator = ml.Transforms.ApplyMaeSegmenter(onnx, predictedLabelColumnName: "PredictedLabel");
        Assert.Equal(["bg", "square", "circle"], estimator.ClassNames);
        Assert.Equal(32, estimator.ImageSize);
        var scored = estimator.Fit(data).Transform(data);
        var sizes = data.GetColumn<MLImage>("Image").Select(i => i.Width * i.Height).ToArray();
        Assert.Equal(sizes, scored.GetColumn<VBuffer<uint>>("PredictedMask").Select(v => v.Length));
        Assert.Equal(sizes, scored.GetColumn<VBuffer<uint>>("PredictedLabel").Select(v => v.Length));

        // the old model-size export still serves through SegmentImages, and is refused by ApplyMaeSegmenter with the remedy
        var old = Path.Combine(dir, "old.onnx");
        var (loaded, _) = SegmentationModelFile.Load(file);
        using (loaded) SegmentationOnnxExporter.Export(loaded, old);
        var masks = ml.Transforms.SegmentImages("Mask", "Image", old, 32).Fit(data).Transform(data).GetColumn<VBuffer<long>>("Mask").ToList();
        Assert.All(masks, m => Assert.Equal(32 * 32, m.Length));
        var e = Assert.Throws<InvalidDataException>(() => ml.Transforms.ApplyMaeSegmenter(old));
        Assert.Contains("export-onnx", e.Message);
    }
}

/// <summary>Serialises the tests here that seed torch's global generator (they run in the console collection, not TorchGlobalRng).</summary>
static class TorchRng
{
    public static readonly object Lock = new();
}
