using MaeMl.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Detection;

/// <summary>How an exported detector compares with the TorchSharp model it came from (<see cref="DetectionOnnxParity.Check"/>).</summary>
/// <param name="Images">Random images compared.</param>
/// <param name="MaxRawScoreDiff">Largest absolute difference of the raw (location, class) scores, <see cref="DetectionOnnxNames.RawScores"/>.</param>
/// <param name="MaxRawBoxDiff">Largest absolute difference of the raw boxes, <see cref="DetectionOnnxNames.RawBoxes"/>, in model pixels.</param>
/// <param name="SelectionExact">The graph's detections are, bit for bit, <see cref="FcosPostprocess.Select"/> on the graph's own raw outputs
/// (threshold, top-K, class-wise NMS, cap, scaling to the image).</param>
/// <param name="ImagesMatchingTorchSharp">Images whose ONNX detections equal TorchSharp's (same count and labels in order, boxes within
/// 0.01 px of the image, scores within 1e-4): near-equal scores may change places or cross a threshold otherwise.</param>
/// <param name="OnnxDetections">Detections of the ONNX model, all images.</param>
/// <param name="TorchSharpDetections">Detections of TorchSharp (<see cref="FcosPostprocess.Decode"/>), all images.</param>
public sealed record DetectionOnnxParityReport(int Images, float MaxRawScoreDiff, float MaxRawBoxDiff, bool SelectionExact, int ImagesMatchingTorchSharp,
    int OnnxDetections, int TorchSharpDetections)
{
    /// <summary>Raw scores within 1e-4, raw boxes within 1e-4 of the input size, and the selection exact.</summary>
    public bool Passed(int imageSize) => MaxRawScoreDiff <= 1e-4f && MaxRawBoxDiff <= 1e-4f * imageSize && SelectionExact;
}

/// <summary>Checks an exported detector (<see cref="DetectionOnnxExporter"/>) against its TorchSharp model on random images and image sizes.</summary>
public static class DetectionOnnxParity
{
    /// <summary>Runs <paramref name="images"/> random 0..255 images, each said to come from an image of a random size (S/2 .. 3S a
    /// side), through ONNX Runtime (CPU) and through <paramref name="model"/> with <see cref="FcosPostprocess"/>.</summary>
    public static DetectionOnnxParityReport Check(DetectionModel model, string onnxFile, int images = 2, int seed = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(images, 1);
        var c = model.Config;
        int s = c.Encoder.ImageSize, k = c.NumClasses;
        var rng = new Random(seed);
        var sizes = Enumerable.Range(0, images).Select(_ => (Width: rng.Next(s / 2, 3 * s + 1), Height: rng.Next(s / 2, 3 * s + 1))).ToList();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var pixels = ImageNetNormalization.RandomPixels(images, s, seed);
        bool wasTraining = model.training;
        model.eval();
        List<DetectedBox[]> torchBoxes;
        float[] torchScores, torchRawBoxes;
        using (var output = model.forward(ImageNetNormalization.Normalize(pixels)))
        {
            torchBoxes = FcosPostprocess.Decode(model, output, sizes);
            torchScores = (output.ClassLogits.sigmoid() * output.Centerness.sigmoid().unsqueeze(-1)).sqrt().transpose(1, 2).contiguous().data<float>().ToArray();   // [N, K, A]
            var (xs, ys, _) = model.Locations;
            var d = output.Distances.contiguous().data<float>().ToArray();   // [N, A, 4]
            int a = xs.Length;
            torchRawBoxes = new float[images * a * 4];
            for (int b = 0; b < images; b++)
            for (int i = 0; i < a; i++)
            {
                int o = (b * a + i) * 4;
                torchRawBoxes[o] = Math.Clamp(xs[i] - d[o], 0, s);
                torchRawBoxes[o + 1] = Math.Clamp(ys[i] - d[o + 1], 0, s);
                torchRawBoxes[o + 2] = Math.Clamp(xs[i] + d[o + 2], 0, s);
                torchRawBoxes[o + 3] = Math.Clamp(ys[i] + d[o + 3], 0, s);
            }
        }
        if (wasTraining) model.train();

        using var session = new InferenceSession(onnxFile);
        var input = new DenseTensor<float>(pixels.contiguous().data<float>().ToArray(), [images, 3, s, s]);
        var wh = new DenseTensor<float>(sizes.SelectMany(x => new float[] { x.Width, x.Height }).ToArray(), [images, 2]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(DetectionOnnxNames.Pixels, input), NamedOnnxValue.CreateFromTensor(DetectionOnnxNames.ImageSize, wh)]);
        Tensor<float> F(string name) => results.First(r => r.Name == name).AsTensor<float>();
        long[] L(string name) => results.First(r => r.Name == name).AsTensor<long>().ToArray();
        var rawScores = F(DetectionOnnxNames.RawScores).ToArray();
        var rawBoxes = F(DetectionOnnxNames.RawBoxes).ToArray();
        var boxesTensor = F(DetectionOnnxNames.Boxes);
        var boxes = boxesTensor.ToArray();
        var scores = F(DetectionOnnxNames.Scores).ToArray();
        var labels = L(DetectionOnnxNames.Labels);
        var count = L(DetectionOnnxNames.Count);
        int m = boxesTensor.Dimensions[1];
        if (rawScores.Length != torchScores.Length || rawBoxes.Length != torchRawBoxes.Length)
            throw new InvalidDataException($"'{onnxFile}' gives {rawScores.Length} raw scores and {rawBoxes.Length / 4} raw boxes, TorchSharp {torchScores.Length} and {torchRawBoxes.Length / 4}: not this model's export");
        float scoreDiff = rawScores.Zip(torchScores, (x, y) => Math.Abs(x - y)).Max();
        float boxDiff = rawBoxes.Zip(torchRawBoxes, (x, y) => Math.Abs(x - y)).Max();

        bool exact = true;
        int matching = 0, onnxCount = 0;
        int locations = rawBoxes.Length / 4 / images;
        for (int img = 0; img < images; img++)
        {
            var got = Enumerable.Range(0, (int)count[img]).Select(j => img * m + j)
                .Select(i => new DetectedBox(boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3], (int)labels[i], scores[i])).ToArray();
            onnxCount += got.Length;
            var locationMajor = new float[locations * k];
            for (int cls = 0; cls < k; cls++)
            for (int i = 0; i < locations; i++) locationMajor[i * k + cls] = rawScores[(img * k + cls) * locations + i];
            var want = FcosPostprocess.Select(c, locationMajor, rawBoxes.AsSpan(img * locations * 4, locations * 4), k, sizes[img].Width / (float)s, sizes[img].Height / (float)s);
            exact &= want.SequenceEqual(got);
            var torch = torchBoxes[img];
            if (torch.Length == got.Length && torch.Zip(got).All(p => p.First.Label == p.Second.Label && Math.Abs(p.First.Score - p.Second.Score) <= 1e-4f
                    && Math.Abs(p.First.X0 - p.Second.X0) <= 0.01f && Math.Abs(p.First.Y0 - p.Second.Y0) <= 0.01f
                    && Math.Abs(p.First.X1 - p.Second.X1) <= 0.01f && Math.Abs(p.First.Y1 - p.Second.Y1) <= 0.01f))
                matching++;
        }
        return new DetectionOnnxParityReport(images, scoreDiff, boxDiff, exact, matching, onnxCount, torchBoxes.Sum(b => b.Length));
    }
}
