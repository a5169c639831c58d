using MaeMl.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Segmentation;

/// <summary>How an exported segmenter compares with the TorchSharp model it came from (<see cref="SegmentationOnnxParity.Check"/>).</summary>
/// <param name="Images">Random images compared.</param>
/// <param name="Width">Width of the original image the batch was said to come from (the image-size output), or 0 without that output.</param>
/// <param name="Height">Its height.</param>
/// <param name="MaxProbabilityDiff">Largest absolute difference of the class probabilities (NaN when the graph has no probabilities).</param>
/// <param name="ModelPixels">Pixels of the model-size (W x H) class maps compared.</param>
/// <param name="ModelPixelsDiffering">Of those, pixels whose ONNX class differs from TorchSharp's arg-max.</param>
/// <param name="DifferingNotTied">Of those, pixels where TorchSharp's two best probabilities are more than 1e-4 apart (not a float-rounding tie).</param>
/// <param name="ImagePixels">Pixels of the image-size class maps compared (0 without that output).</param>
/// <param name="ImagePixelsDiffering">Of those, pixels that differ from TorchSharp's class map resized with <see cref="NearestResize"/>.</param>
/// <param name="ResizeExact">The image-size map is exactly <see cref="NearestResize"/> of the graph's own model-size map (true without that output).</param>
public sealed record SegmentationOnnxParityReport(int Images, int Width, int Height, float MaxProbabilityDiff, long ModelPixels, long ModelPixelsDiffering,
    long DifferingNotTied, long ImagePixels, long ImagePixelsDiffering, bool ResizeExact)
{
    /// <summary>Probabilities within 1e-4 (when exported), every differing pixel a tie, and the resize exact.</summary>
    public bool Passed => !(MaxProbabilityDiff > 1e-4f) && DifferingNotTied == 0 && ResizeExact;
}

/// <summary>Checks an exported segmenter (<see cref="SegmentationOnnxExporter"/>) against its TorchSharp model on random images.</summary>
public static class SegmentationOnnxParity
{
    /// <summary>Runs <paramref name="images"/> random 0..255 images through ONNX Runtime (CPU) and <paramref name="model"/>; when the graph
    /// takes <see cref="SegmentationOnnxNames.ImageSize"/>, the batch is said to come from an image of a random size (W/2 .. 3W wide, H/2 .. 3H high).</summary>
    public static SegmentationOnnxParityReport Check(SegmentationModel model, string onnxFile, int images = 2, int seed = 0)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(images, 1);
        var (sw, sh) = model.Config.Encoder.InputSize;
        int k = model.Config.NumClasses, plane = sw * sh;
        var rng = new Random(seed);
        int width = rng.Next(sw / 2, 3 * sw + 1), height = rng.Next(sh / 2, 3 * sh + 1);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var pixels = ImageNetNormalization.RandomPixels(images, sh, sw, seed);
        bool wasTraining = model.training;
        model.eval();
        var probabilities = model.forward(ImageNetNormalization.Normalize(pixels)).softmax(1);
        if (wasTraining) model.train();
        var torchClasses = probabilities.argmax(1).contiguous().data<long>().ToArray();
        var top2 = probabilities.topk(Math.Min(2, k), dim: 1).values;
        var gap = (top2.select(1, 0) - top2.select(1, top2.shape[1] - 1)).contiguous().data<float>().ToArray();   // [N, H, W]
        var torchProbabilities = probabilities.contiguous().data<float>().ToArray();

        using var session = new InferenceSession(onnxFile);
        bool withSize = session.InputMetadata.ContainsKey(SegmentationOnnxNames.ImageSize);
        var inputs = new List<NamedOnnxValue> { NamedOnnxValue.CreateFromTensor(SegmentationOnnxNames.Pixels, new DenseTensor<float>(pixels.contiguous().data<float>().ToArray(), [images, 3, sh, sw])) };
        if (withSize)
            inputs.Add(NamedOnnxValue.CreateFromTensor(SegmentationOnnxNames.ImageSize, new DenseTensor<float>(Enumerable.Range(0, images).SelectMany(_ => new float[] { width, height }).ToArray(), [images, 2])));
        using var results = session.Run(inputs);
        var classes = results.First(r => r.Name == SegmentationOnnxNames.ClassMap).AsTensor<long>().ToArray();
        if (classes.Length != torchClasses.Length) throw new InvalidDataException($"'{onnxFile}' gives {classes.Length} class ids, TorchSharp {torchClasses.Length}: not this model's export");
        float probabilityDiff = float.NaN;
        if (results.FirstOrDefault(r => r.Name == SegmentationOnnxNames.Probabilities) is { } p)
            probabilityDiff = p.AsTensor<float>().ToArray().Zip(torchProbabilities, (x, y) => Math.Abs(x - y)).Max();
        long differing = 0, notTied = 0;
        for (int i = 0; i < classes.Length; i++)
            if (classes[i] != torchClasses[i]) { differing++; if (gap[i] > 1e-4f) notTied++; }

        long imagePixels = 0, imageDiffering = 0;
        bool resizeExact = true;
        if (withSize && results.FirstOrDefault(r => r.Name == SegmentationOnnxNames.ImageClassMap) is { } resized)
        {
            var map = resized.AsTensor<uint>().ToArray();
            if (map.Length != (long)images * width * height) throw new InvalidDataException($"'{onnxFile}' gives {map.Length} image-size class ids for {images} images of {width}x{height}");
            for (int b = 0; b < images; b++)
            {
                var own = NearestResize.Resize<long>(classes.AsSpan(b * plane, plane), sw, sh, width, height);
                var torch = NearestResize.Resize<long>(torchClasses.AsSpan(b * plane, plane), sw, sh, width, height);
                for (int i = 0; i < own.Length; i++)
                {
                    uint v = map[(long)b * width * height + i];
                    resizeExact &= v == own[i];
                    if (v != torch[i]) imageDiffering++;
                }
                imagePixels += own.Length;
            }
        }
        return new SegmentationOnnxParityReport(images, withSize ? width : 0, withSize ? height : 0, probabilityDiff, classes.Length, differing, notTied, imagePixels, imageDiffering, resizeExact);
    }
}
