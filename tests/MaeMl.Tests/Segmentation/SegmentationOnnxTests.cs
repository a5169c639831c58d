using MaeMl.MLNet;
using MaeMl.Segmentation;
using MaeMl.Tests.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Segmentation;

/// <summary>Segmentation export: ONNX (through ML.NET's own components) matches TorchSharp, and the fitted pipeline saves and reloads.</summary>
[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public sealed class SegmentationOnnxTests : IDisposable
{
    const int Size = 32;
    readonly string dir = TestImages.TempDir("seg-onnx");

    public void Dispose() => Directory.Delete(dir, true);

    public sealed class PathRow
    {
        public string ImagePath { get; set; } = "";
    }

    [Theory]
    [InlineData(SegmentationHeadKind.Linear)]
    [InlineData(SegmentationHeadKind.Pyramid)]
    public void MLNetPipelineMatchesTorchsharpAndSurvivesSaveAndLoad(SegmentationHeadKind head)
    {
        manual_seed(3);
        using var model = new SegmentationModel(new SegmentationConfig(DenseTestData.TinyEncoder(Size), 5, head, PyramidChannels: 8));
        OnnxTestModels.Perturb(model);
        model.eval();
        var onnx = Path.Combine(dir, "seg.onnx");
        SegmentationOnnxExporter.Export(model, onnx, includeProbabilities: true);

        // random pixels, given to ML.NET as images of the model's size (no resampling) and to TorchSharp as a tensor
        var rng = new Random(0);
        const int n = 2;
        var images = new List<MLImage>();
        var planes = new float[n * 3 * Size * Size];
        for (int k = 0; k < n; k++)
        {
            var rgba = new byte[Size * Size * 4];
            for (int i = 0; i < Size * Size; i++)
            {
                for (int c = 0; c < 3; c++) { var v = (byte)rng.Next(256); rgba[4 * i + c] = v; planes[(k * 3 + c) * Size * Size + i] = v; }
                rgba[4 * i + 3] = 255;
            }
            images.Add(MLImage.CreateFromPixels(Size, Size, MLPixelFormat.Rgba32, rgba));
        }
        using var pixels = tensor(planes).view(n, 3, Size, Size);
        using var normalized = OnnxTestModels.Normalize(pixels);
        Tensor expectedProbs, expectedClasses;
        using (no_grad())
        {
            using var logits = model.forward(normalized);
            expectedProbs = logits.softmax(1);
            expectedClasses = logits.argmax(1);
        }

        var ml = new MLContext(seed: 0);
        var rows = images.Select((image, i) => { var path = Path.Combine(dir, $"img{i}.png"); image.Save(path); return new PathRow { ImagePath = path }; }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var transformer = ml.Transforms.LoadImages("Image", imageFolder: null, inputColumnName: "ImagePath")
            .Append(ml.Transforms.SegmentImages("Mask", "Image", onnx, Size, probabilitiesColumnName: "Probabilities")).Fit(data);
        var saved = Path.Combine(dir, "seg.zip");
        ml.Model.Save(transformer, data.Schema, saved);
        File.Delete(onnx);   // the saved pipeline carries the ONNX model
        foreach (var t in new[] { transformer, new MLContext().Model.Load(saved, out _) })
        {
            var scored = t.Transform(data);
            Assert.Null(scored.Schema.GetColumnOrNull(DenseCatalog.ResizedImageColumn));
            var masks = scored.GetColumn<VBuffer<long>>("Mask").Select(v => v.DenseValues().ToArray()).ToArray();
            var probs = scored.GetColumn<VBuffer<float>>("Probabilities").SelectMany(v => v.DenseValues()).ToArray();
            Assert.Equal(n, masks.Length);
            Assert.All(masks, m => Assert.Equal(Size * Size, m.Length));
            Assert.True(OnnxTestModels.MaxAbsDiff(expectedProbs, probs) < 1e-4f);
            var expected = expectedClasses.flatten().data<long>().ToArray();
            var agree = masks.SelectMany(m => m).Zip(expected, (a, b) => a == b).Count(x => x) / (double)expected.Length;
            Assert.True(agree > 0.99, $"class maps agree on {agree:P2} of the pixels");
        }
        expectedProbs.Dispose();
        expectedClasses.Dispose();
    }
}
