using MaeMl.Detection;
using MaeMl.Tests.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Detection;

/// <summary>Detection export: the graph's selection (threshold, top-K, class-wise NMS, per-image cap, scaling to the image) is
/// <see cref="FcosPostprocess"/>'s, and its raw scores and boxes match TorchSharp.</summary>
[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public sealed class DetectionOnnxTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = TestImages.TempDir("det-onnx");
    public void Dispose() => Directory.Delete(dir, true);

    static readonly (int Width, int Height)[] Sizes = [(50, 20), (17, 64), (32, 32)];

    /// <summary>A random detector with spread-out scores (head weights x30) exported to <paramref name="path"/>.</summary>
    static DetectionModel Exported(DetectionConfig config, string path)
    {
        manual_seed(5);
        var model = new DetectionModel(config);
        OnnxTestModels.Perturb(model);
        using (no_grad()) foreach (var (name, p) in model.named_parameters()) if (name.StartsWith("head.") && name.EndsWith("weight")) p.mul_(30);   // this also amplifies float rounding, hence 1e-3 below
        model.eval();
        DetectionOnnxExporter.Export(model, path);
        return model;
    }

    sealed record OnnxRun(float[] Boxes, float[] Scores, long[] Labels, long[] Count, int[] BoxesShape, float[] RawBoxes, float[] RawScores);

    static OnnxRun Run(string path, TorchSharp.torch.Tensor pixels, IReadOnlyList<(int Width, int Height)> sizes)
    {
        using var session = new InferenceSession(path);
        int n = (int)pixels.shape[0], s = (int)pixels.shape[2];
        var input = new DenseTensor<float>(OnnxTestModels.ToArray(pixels), [n, 3, s, s]);
        var wh = new DenseTensor<float>(sizes.SelectMany(x => new float[] { x.Width, x.Height }).ToArray(), [n, 2]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(DetectionOnnxNames.Pixels, input), NamedOnnxValue.CreateFromTensor(DetectionOnnxNames.ImageSize, wh)]);
        Tensor<float> F(string name) => results.First(r => r.Name == name).AsTensor<float>();
        long[] L(string name) => results.First(r => r.Name == name).AsTensor<long>().ToArray();
        return new OnnxRun(F(DetectionOnnxNames.Boxes).ToArray(), F(DetectionOnnxNames.Scores).ToArray(), L(DetectionOnnxNames.Labels), L(DetectionOnnxNames.Count),
            F(DetectionOnnxNames.Boxes).Dimensions.ToArray(), F(DetectionOnnxNames.RawBoxes).ToArray(), F(DetectionOnnxNames.RawScores).ToArray());
    }

    /// <summary>The detections of image <paramref name="img"/> in the padded [N, M, ...] outputs.</summary>
    static DetectedBox[] Image(OnnxRun r, int img)
    {
        int m = r.BoxesShape[1];
        return Enumerable.Range(0, (int)r.Count[img]).Select(j => img * m + j)
            .Select(i => new DetectedBox(r.Boxes[4 * i], r.Boxes[4 * i + 1], r.Boxes[4 * i + 2], r.Boxes[4 * i + 3], (int)r.Labels[i], r.Scores[i])).ToArray();
    }

    [Theory]
    [InlineData(0.2f, 100000, 100000)]   // no caps: threshold and NMS only
    [InlineData(0.05f, 60, 7)]           // both caps bind: 60 candidates, 7 detections an image
    [InlineData(0f, 1000, 100)]          // the defaults with threshold 0 (an untrained model's case: everything is a candidate)
    public void OnnxSelectionIsExactlyFcosPostprocessOnTheSameRawOutputs(float threshold, int preNmsTopK, int maxDetections)
    {
        var config = new DetectionConfig(DenseTestData.TinyEncoder(), 3, PyramidChannels: 8, HeadConvs: 1) { ScoreThreshold = threshold, PreNmsTopK = preNmsTopK, MaxDetections = maxDetections };
        var path = Path.Combine(dir, "det.onnx");
        using var model = Exported(config, path);
        using var pixels = OnnxTestModels.RandomPixels(Sizes.Length, 32);
        var r = Run(path, pixels, Sizes);
        int a = model.Locations.X.Length, k = config.NumClasses;
        Assert.Equal(Sizes.Length, r.Count.Length);
        Assert.Equal((int)r.Count.Max(), r.BoxesShape[1]);
        for (int img = 0; img < Sizes.Length; img++)
        {
            var scores = new float[a * k];   // [K, A] -> location-major
            for (int c = 0; c < k; c++) for (int i = 0; i < a; i++) scores[i * k + c] = r.RawScores[(img * k + c) * a + i];
            var want = FcosPostprocess.Select(config, scores, r.RawBoxes.AsSpan(img * a * 4, a * 4), k, Sizes[img].Width / 32f, Sizes[img].Height / 32f);
            var got = Image(r, img);
            Assert.Equal(want, got);   // bit for bit: same candidates, same order, same boxes
            Assert.InRange(got.Length, 1, maxDetections);
            int m = r.BoxesShape[1];
            for (int j = got.Length; j < m; j++) { Assert.Equal(-1, r.Labels[img * m + j]); Assert.Equal(0f, r.Scores[img * m + j]); }
        }
        if (maxDetections == 7) Assert.All(r.Count, c => Assert.Equal(7, c));
        int ties = r.RawScores.Where(x => x > threshold).GroupBy(x => x).Sum(g => g.Count() - 1);
        output.WriteLine($"threshold {threshold}, top-K {preNmsTopK}, cap {maxDetections}: detections {string.Join(", ", r.Count)}, tied candidate scores {ties}");
    }

    [Fact]
    public void OnnxGraphMatchesTorchsharpPostprocessingInOriginalPixels()
    {
        var config = new DetectionConfig(DenseTestData.TinyEncoder(), 3, PyramidChannels: 8, HeadConvs: 1) { ScoreThreshold = 0.2f, PreNmsTopK = 100000, MaxDetections = 100000 };
        var path = Path.Combine(dir, "det.onnx");
        using var model = Exported(config, path);
        using var pixels = OnnxTestModels.RandomPixels(Sizes.Length, 32);
        using var normalized = OnnxTestModels.Normalize(pixels);
        List<DetectedBox[]> expected;
        TorchSharp.torch.Tensor expectedScores;
        using (no_grad())
        {
            using var o = model.forward(normalized);
            expected = FcosPostprocess.Decode(model, o, Sizes);
            expectedScores = (o.ClassLogits.sigmoid() * o.Centerness.sigmoid().unsqueeze(-1)).sqrt().transpose(1, 2).contiguous();
        }
        var r = Run(path, pixels, Sizes);
        var scoreDiff = OnnxTestModels.MaxAbsDiff(expectedScores, r.RawScores);
        Assert.True(scoreDiff < 1e-3f, $"raw scores differ by {scoreDiff}");
        expectedScores.Dispose();
        Assert.True(expected.Sum(e => e.Length) > 3, "the test needs some detections");
        for (int img = 0; img < Sizes.Length; img++)
        {
            var actual = Image(r, img);
            var want = expected[img];
            Assert.Equal(want.Length, actual.Length);
            var used = new bool[actual.Length];
            float sx = Sizes[img].Width / 32f, sy = Sizes[img].Height / 32f, tol = 0.05f;
            bool Near(DetectedBox x, DetectedBox b) => x.Label == b.Label && Math.Abs(x.Score - b.Score) < 2e-3f && Math.Abs(x.X0 - b.X0) < tol * sx
                && Math.Abs(x.Y0 - b.Y0) < tol * sy && Math.Abs(x.X1 - b.X1) < tol * sx && Math.Abs(x.Y1 - b.Y1) < tol * sy;
            foreach (var box in want)   // same boxes up to float rounding (near-equal scores may swap places)
            {
                int j = Enumerable.Range(0, actual.Length).FirstOrDefault(i => !used[i] && Near(actual[i], box), -1);
                Assert.True(j >= 0, $"image {img}: ONNX lacks {box}");
                used[j] = true;
            }
        }
    }
}
