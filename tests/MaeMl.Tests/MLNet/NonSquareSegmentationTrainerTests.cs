using MaeMl.MLNet;
using MaeMl.Model;
using MaeMl.Segmentation;
using MaeMl.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Xunit;
using Xunit.Abstractions;

namespace MaeMl.Tests.MLNet;

/// <summary>The ML.NET segmentation trainer with a non-square model input (W x H, ML.NET's ResizeImages(width, height)): masks come back at
/// each input image's size, the same from the fitted chain, from ApplyMaeSegmenter on the exported file (which reads both sides from its
/// metadata) and from the TorchSharp model.</summary>
[Collection("TorchGlobalRng")]   // training seeds and draws from torch's global generator
public sealed class NonSquareSegmentationTrainerTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = TestImages.TempDir("seg-mlnet-nonsquare");
    public void Dispose() => Directory.Delete(dir, true);

    [Fact]
    public void TrainerAndApplyMaeSegmenterReturnMasksAtTheInputImageSize()
    {
        var images = SemanticSegmentationTrainerTests.Write(Path.Combine(dir, "images"), 6, seed: 2);
        var ml = new MLContext(seed: 0);
        var rows = ml.Data.LoadFromEnumerable(images.Select(i => new SemanticSegmentationTrainerTests.Row { ImagePath = i.Image, MaskPath = i.Mask }));
        var inputs = ml.Transforms.LoadImages("Image", null, "ImagePath").Append(ml.Transforms.LoadImages("Mask", null, "MaskPath"));
        var loaded = inputs.Fit(rows).Transform(rows);
        var onnx = Path.Combine(dir, "seg.onnx");
        var size = new InputSize(40, 24);
        var trainer = ml.MulticlassClassification.Trainers.MaeSemanticSegmentation(new MaeSemanticSegmentationOptions
        {
            Seed = 0, Encoder = DenseTestData.TinyEncoder().WithInputSize(size), PyramidChannels = 8, NumClasses = 3, OnnxModelFile = onnx,
            Training = new DenseTrainingOptions { Epochs = 2, BatchSize = 3 },
        });
        var model = trainer.Fit(loaded);
        using var trained = trainer.TrainedModel!;
        Assert.Equal(size, trained.Config.Encoder.InputSize);

        var fromFile = ml.Transforms.ApplyMaeSegmenter(onnx);
        Assert.Equal(size, fromFile.ImageSize);
        var torch = trainer.Predict(loaded);
        foreach (var (name, chain) in new[] { ("trainer", model), ("ApplyMaeSegmenter", fromFile.Fit(loaded)) })
        {
            var masks = chain.Transform(loaded).GetColumn<VBuffer<uint>>("PredictedMask").Select(v => v.DenseValues().ToArray()).ToArray();
            Assert.Equal(images.Count, masks.Length);
            long same = 0, pixels = 0;
            for (int r = 0; r < masks.Length; r++)
            {
                Assert.Equal(images[r].Width * images[r].Height, masks[r].Length);
                Assert.Equal(torch[r].Length, masks[r].Length);
                pixels += masks[r].Length;
                same += masks[r].Zip(torch[r]).Count(p => p.First == p.Second);
            }
            output.WriteLine($"{name}: {string.Join(", ", images.Select(i => $"{i.Width}x{i.Height}"))}: {same}/{pixels} pixels as TorchSharp's class map resized the same way");
            Assert.Equal(pixels, same);
        }
    }
}
