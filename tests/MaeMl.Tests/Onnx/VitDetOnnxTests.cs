using System.Diagnostics;
using Google.Protobuf;
using MaeMl.Data;
using MaeMl.Detection;
using MaeMl.Model;
using MaeMl.Onnx;
using MaeMl.Segmentation;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Onnx;

/// <summary>The ViTDet backbone (windows with padding, global blocks, relative positions) exported in the detector and segmenter graphs.</summary>
[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public sealed class VitDetOnnxTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = TestImages.TempDir("vitdet-onnx");

    public void Dispose() => Directory.Delete(dir, true);

    /// <summary>40 px, patch 8: a 5 x 5 grid, window 3 (padded to 6 x 6), block 1 of 2 global, relative positions on.</summary>
    static readonly BackboneAttention Tiny = new() { WindowSize = 3, GlobalBlocks = [1], RelativePositions = true };

    /// <summary>Biases and norms perturbed as the other export tests do, and the (zero-initialised) relative positions made non-zero.</summary>
    static void Randomize(nn.Module model, double relPosStd = 0.3)
    {
        OnnxTestModels.Perturb(model);
        using var _ = no_grad();
        foreach (var (name, p) in model.named_parameters())
            if (VitDetOps.IsRelativePosition(name)) p.add_(randn_like(p) * relPosStd);
    }

    [Fact]
    public void WindowedDetectorExportMatchesTorchSharp()
    {
        manual_seed(5);
        using var model = new DetectionModel(new DetectionConfig(DenseTestData.TinyEncoder(40), 3, PyramidChannels: 8) { Attention = Tiny, ScoreThreshold = 0.3f });
        Randomize(model);
        var path = Path.Combine(dir, "det.onnx");
        DetectionOnnxExporter.Export(model, path);
        var report = DetectionOnnxParity.Check(model, path, images: 2);
        output.WriteLine($"raw score diff {report.MaxRawScoreDiff:E2}, raw box diff {report.MaxRawBoxDiff:E2}, selection exact {report.SelectionExact}");
        Assert.True(report.Passed(40), report.ToString());
    }

    [Theory]
    [InlineData(SegmentationHeadKind.Linear)]
    [InlineData(SegmentationHeadKind.Pyramid)]
    public void WindowedSegmenterExportMatchesTorchSharp(SegmentationHeadKind head)
    {
        // 48 px: a 6 x 6 grid (the pyramid's 0.5 level needs an even grid), window 4 padded to 8 x 8
        manual_seed(6);
        using var model = new SegmentationModel(new SegmentationConfig(DenseTestData.TinyEncoder(48), 4, head, PyramidChannels: 8) { Attention = Tiny with { WindowSize = 4 } });
        Randomize(model);
        var path = Path.Combine(dir, "seg.onnx");
        SegmentationOnnxExporter.Export(model, path, includeProbabilities: true);
        var report = SegmentationOnnxParity.Check(model, path, images: 2);
        output.WriteLine($"{head}: probability diff {report.MaxProbabilityDiff:E2}, {report.ModelPixelsDiffering} of {report.ModelPixels} pixels differ");
        Assert.True(report.Passed, report.ToString());
        var low = LowResLogitsDiff(model, SegmentationOnnxExporter.Build(model), 1, seed: 2);
        Assert.True(low < 1e-4, $"logits differ by {low}");
    }

    [Theory]
    [InlineData(SegmentationHeadKind.Pyramid)]
    [InlineData(SegmentationHeadKind.UperNet)]
    public void WindowedSegmenterAtANonSquareSizeExportsWithParity(SegmentationHeadKind head)
    {
        // 40 x 24 px: a 6 x 10 grid (rows x columns), window 4 padded to 8 x 12, relative positions of the 6 x 10 grid in the global blocks
        manual_seed(7);
        var encoder = DenseTestData.TinyEncoder(48).WithInputSize(new InputSize(40, 24));
        using var model = new SegmentationModel(new SegmentationConfig(encoder, 4, head, PyramidChannels: 8) { Attention = Tiny with { WindowSize = 4 } });
        Randomize(model);
        using (var logits = model.forward(zeros(1, 3, 24, 40))) Assert.Equal(new long[] { 1, 4, 24, 40 }, logits.shape);
        var path = Path.Combine(dir, "seg-nonsquare.onnx");
        SegmentationOnnxExporter.Export(model, path, includeProbabilities: true);
        var report = SegmentationOnnxParity.Check(model, path, images: 2);
        output.WriteLine($"{head}: probability diff {report.MaxProbabilityDiff:E2}, {report.ModelPixelsDiffering} of {report.ModelPixels} pixels differ");
        Assert.True(report.Passed, report.ToString());
    }

    /// <summary>Max abs difference between the graph's logits before upsampling (made an extra output) and <see cref="SegmentationModel.ForwardLowRes"/>.</summary>
    static double LowResLogitsDiff(SegmentationModel model, global::Onnx.ModelProto onnx, int images, int seed)
    {
        var c = model.Config;
        int s = c.Encoder.ImageSize;
        var graph = onnx.Graph;
        var logits = graph.Node.First(n => n.OpType == "Resize" && n.Output[0].StartsWith("logits_upsampled")).Input[0];
        using var pixels = ImageNetNormalization.RandomPixels(images, s, seed);
        using var scope = NewDisposeScope();
        torch.Tensor expected;
        using (no_grad()) { model.eval(); expected = model.ForwardLowRes(ImageNetNormalization.Normalize(pixels)); }
        new OnnxGraphBuilder(graph).Output(logits, logits, "batch", c.NumClasses, expected.shape[2], expected.shape[3]);
        using var session = new InferenceSession(onnx.ToByteArray());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(SegmentationOnnxNames.Pixels, new DenseTensor<float>(pixels.contiguous().data<float>().ToArray(), [images, 3, s, s]))],
            [logits]);
        var actual = results.Single().AsTensor<float>().ToArray();
        var reference = expected.contiguous().data<float>().ToArray();
        Assert.Equal(reference.Length, actual.Length);
        return actual.Zip(reference, (a, b) => (double)Math.Abs(a - b)).Max();
    }

    [Fact]
    public void VitDetBaseSegmenterAt320PixelsExportsWithParity()
    {
        // ViT-B/16 (768 x 12, 12 heads) with ViTDet-B attention at 320 px: a 20 x 20 grid, windows of 14 padded to 28 x 28 (4 windows),
        // global blocks 2, 5, 8, 11 (rel pos tables 2*20-1 rows), random non-zero relative positions
        var encoder = MaePresets.MaeVitBasePatch16Dec512d8b with { ImageSize = 320 };
        manual_seed(7);
        var watch = Stopwatch.StartNew();
        using var model = new SegmentationModel(new SegmentationConfig(encoder, 5, SegmentationHeadKind.Pyramid) { Attention = BackboneAttention.VitDetBase });
        Randomize(model, relPosStd: 0.05);
        var relPos = model.state_dict().Where(kv => VitDetOps.IsRelativePosition(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(new long[] { 27, 64 }, relPos["backbone.net.blocks.0.attn.rel_pos_h"]);
        Assert.Equal(new long[] { 39, 64 }, relPos["backbone.net.blocks.2.attn.rel_pos_w"]);
        var onnx = SegmentationOnnxExporter.Build(model);
        double built = watch.Elapsed.TotalSeconds;
        var diff = LowResLogitsDiff(model, onnx, 1, seed: 3);
        output.WriteLine($"ViTDet-B/16 segmenter at 320 px: max abs logit diff ONNX vs TorchSharp {diff:E3} (build + export {built:F0} s, total {watch.Elapsed.TotalSeconds:F0} s)");
        Assert.True(diff < 1e-3, $"logits differ by {diff}");
    }
}
