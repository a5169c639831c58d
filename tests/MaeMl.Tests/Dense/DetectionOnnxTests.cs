using MaeMl.Detection;
using MaeMl.Tests.Onnx;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Dense;

/// <summary>Detection export: raw scores and boxes match TorchSharp, and ONNX NonMaxSuppression keeps the boxes <see cref="BoxOps.Nms"/> keeps.</summary>
public sealed class DetectionOnnxTests : IDisposable
{
    readonly string dir = TestImages.TempDir("det-onnx");
    public void Dispose() => Directory.Delete(dir, true);

    [Fact]
    public void Onnx_graph_with_nms_matches_torchsharp_postprocessing()
    {
        manual_seed(5);
        var config = new DetectionConfig(DenseTestData.TinyEncoder(), 3, PyramidChannels: 8, HeadConvs: 1) { ScoreThreshold = 0.2f, PreNmsTopK = 100000, MaxDetections = 100000 };
        using var model = new DetectionModel(config);
        OnnxTestModels.Perturb(model);
        using (no_grad()) foreach (var (name, p) in model.named_parameters()) if (name.StartsWith("head.") && name.EndsWith("weight")) p.mul_(30);   // spread the scores (this also amplifies float rounding, hence 1e-3 below)
        model.eval();
        var path = Path.Combine(dir, "det.onnx");
        DetectionOnnxExporter.Export(model, path);

        using var pixels = OnnxTestModels.RandomPixels(2, 32);
        using var normalized = OnnxTestModels.Normalize(pixels);
        List<DetectedBox[]> expected;
        TorchSharp.torch.Tensor expectedScores;
        using (no_grad())
        {
            using var output = model.forward(normalized);
            expected = FcosPostprocess.Decode(model, output);
            expectedScores = (output.ClassLogits.sigmoid() * output.Centerness.sigmoid().unsqueeze(-1)).sqrt().transpose(1, 2).contiguous();
        }

        using var session = new InferenceSession(path);
        var input = new DenseTensor<float>(OnnxTestModels.ToArray(pixels), [2, 3, 32, 32]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(DetectionOnnxNames.Pixels, input)]);
        float[] Floats(string name) => results.First(r => r.Name == name).AsTensor<float>().ToArray();
        long[] Longs(string name) => results.First(r => r.Name == name).AsTensor<long>().ToArray();
        var scoreDiff = OnnxTestModels.MaxAbsDiff(expectedScores, Floats(DetectionOnnxNames.RawScores));
        Assert.True(scoreDiff < 1e-3f, $"raw scores differ by {scoreDiff}");
        expectedScores.Dispose();

        var boxes = Floats(DetectionOnnxNames.Boxes);
        var scores = Floats(DetectionOnnxNames.Scores);
        var labels = Longs(DetectionOnnxNames.Labels);
        var batch = Longs(DetectionOnnxNames.BatchIndex);
        Assert.True(expected.Sum(e => e.Length) > 3, "the test needs some detections");
        for (int img = 0; img < 2; img++)
        {
            var actual = Enumerable.Range(0, scores.Length).Where(i => batch[i] == img)
                .Select(i => new DetectedBox(boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3], (int)labels[i], scores[i]))
                .OrderByDescending(b => b.Score).ToArray();
            var want = expected[img];
            Assert.Equal(want.Length, actual.Length);
            var used = new bool[actual.Length];
            foreach (var box in want)   // same boxes up to float rounding (near-equal scores may swap places)
            {
                int j = Array.FindIndex(actual, x => x.Label == box.Label && Math.Abs(x.Score - box.Score) < 2e-3f
                    && Math.Abs(x.X0 - box.X0) < 0.05f && Math.Abs(x.Y0 - box.Y0) < 0.05f && Math.Abs(x.X1 - box.X1) < 0.05f && Math.Abs(x.Y1 - box.Y1) < 0.05f);
                while (j >= 0 && used[j]) j = Array.FindIndex(actual, j + 1, x => x.Label == box.Label && Math.Abs(x.Score - box.Score) < 2e-3f && Math.Abs(x.X0 - box.X0) < 0.05f && Math.Abs(x.Y1 - box.Y1) < 0.05f);
                Assert.True(j >= 0, $"image {img}: ONNX lacks {box}");
                used[j] = true;
            }
        }
    }
}
