using MaeMl.MLNet;
using MaeMl.Model;
using MaeMl.Segmentation;
using MaeMl.Training;
using Microsoft.ML;
using Microsoft.ML.Data;
using Xunit;
using Xunit.Abstractions;

namespace MaeMl.Tests.MLNet;

/// <summary>The ML.NET segmentation trainer with the UperNet head: trains, and the fitted chain saves and reloads with the same masks, which
/// are TorchSharp's class maps resized the same way.</summary>
[Collection("TorchGlobalRng")]   // training seeds and draws from torch's global generator
public sealed class UperNetSegmentationTrainerTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = TestImages.TempDir("seg-mlnet-upernet");
    public void Dispose() => Directory.Delete(dir, true);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]   // ViTDet's windows and relative positions through the ML.NET options
    public void UperNetHeadTrainsAndRoundTripsSaveAndLoad(bool windowed)
    {
        var images = SemanticSegmentationTrainerTests.Write(Path.Combine(dir, "images"), 6, seed: 2);
        var ml = new MLContext(seed: 0);
        var data = ml.Data.LoadFromEnumerable(images.Select(i => new SemanticSegmentationTrainerTests.Row { ImagePath = i.Image, MaskPath = i.Mask }));
        var inputs = ml.Transforms.LoadImages("Image", null, "ImagePath").Append(ml.Transforms.LoadImages("Mask", null, "MaskPath"));
        var trainer = ml.MulticlassClassification.Trainers.MaeSemanticSegmentation(new MaeSemanticSegmentationOptions
        {
            Encoder = DenseTestData.TinyEncoder(32), Head = SegmentationHeadKind.UperNet, PyramidChannels = 8, NumClasses = 3,
            Attention = windowed ? new BackboneAttention { WindowSize = 3, GlobalBlocks = [1], RelativePositions = true } : null,
            Training = new DenseTrainingOptions { Epochs = 2, BatchSize = 3, Lr = 3e-3, BackboneLrScale = 1 },
        });
        var model = inputs.Append(trainer).Fit(data);
        using var trained = trainer.TrainedModel!;
        Assert.Equal(SegmentationHeadKind.UperNet, trained.Config.Head);
        Assert.Contains("head.psp_modules.3.1.conv.weight", trained.state_dict().Keys);
        Assert.Equal(windowed, trained.state_dict().Keys.Any(k => k.EndsWith(".attn.rel_pos_h")));

        var zip = Path.Combine(dir, "seg.zip");
        ml.Model.Save(model, data.Schema, zip);
        var reloaded = new MLContext().Model.Load(zip, out _);
        static uint[][] Masks(IDataView scored) => scored.GetColumn<VBuffer<uint>>("PredictedMask").Select(v => v.DenseValues().ToArray()).ToArray();
        var fresh = Masks(model.Transform(data));
        Assert.Equal(fresh.SelectMany(m => m), Masks(reloaded.Transform(data)).SelectMany(m => m));
        Assert.Equal(images.Select(i => i.Width * i.Height), fresh.Select(m => m.Length));

        var torch = trainer.Predict(inputs.Fit(data).Transform(data));
        long pixels = fresh.Sum(m => (long)m.Length), same = fresh.Zip(torch).Sum(p => (long)p.First.Zip(p.Second).Count(q => q.First == q.Second));
        output.WriteLine($"{same}/{pixels} pixels identical to TorchSharp's class map resized the same way");
        Assert.True(same >= 0.999 * pixels, $"{same}/{pixels} pixels agree with TorchSharp");
    }
}
