using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Model;
using MaeMl.Segmentation;
using MaeMl.Training;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Segmentation;

/// <summary>A tiny segmenter at a non-square W x H, end to end: the dataset at W x H, a training step (flip and the scale jitter),
/// the model file (both sides recorded; a square one as before), ONNX export ([N, 3, H, W] in, the image-size class map out) with parity.</summary>
[Collection("TorchGlobalRng")]   // seeds torch's global generator
public sealed class NonSquareSegmentationTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = TestImages.TempDir("seg-nonsquare");
    public void Dispose() => Directory.Delete(dir, true);

    static MaeConfig Encoder(InputSize size) => new MaeConfig
    {
        PatchSize = 4, EmbedDim = 32, Depth = 2, NumHeads = 2, DecoderEmbedDim = 16, DecoderDepth = 1, DecoderNumHeads = 2,
    }.WithInputSize(size);

    [Fact]
    public void EvaluationAtTheMasksOwnSizeScoresEveryMaskPixelAndIsTheModelSizeEvaluationWhenTheSizesAgree()
    {
        var (images, _, masks) = DenseTestData.Write(dir, 3);   // 48 x 48 images and masks
        manual_seed(3);
        var small = new InputSize(40, 24);
        using (var model = new SegmentationModel(new SegmentationConfig(Encoder(small), 3, SegmentationHeadKind.Pyramid, PyramidChannels: 8)))
        using (var data = SegmentationDataset.Load(images, masks, small, numClasses: 3))
        using (var streamed = SegmentationDataset.Stream(images, masks, small, numClasses: 3))
        {
            var own = SegmentationTrainer.EvaluateAtMaskSize(model, data);
            Assert.Equal(3L * 48 * 48, own.Pixels);                                  // scored at 48 x 48, not 40 x 24
            Assert.Equal(3L * 40 * 24, SegmentationTrainer.Evaluate(model, data).Pixels);
            Assert.Equal(own.PerClassIoU(), SegmentationTrainer.EvaluateAtMaskSize(model, streamed).PerClassIoU());
            Assert.Equal(3, data.MaskPaths!.Count);
            Assert.All(data.MaskPaths!, p => Assert.StartsWith(masks, p));
        }
        var same = new InputSize(48, 48);
        using (var model = new SegmentationModel(new SegmentationConfig(Encoder(same), 3, SegmentationHeadKind.Pyramid, PyramidChannels: 8)))
        using (var data = SegmentationDataset.Load(images, masks, same, numClasses: 3))
        {
            var own = SegmentationTrainer.EvaluateAtMaskSize(model, data);
            var atModel = SegmentationTrainer.Evaluate(model, data);
            Assert.Equal(atModel.Pixels, own.Pixels);
            Assert.Equal(atModel.PerClassIoU(), own.PerClassIoU());
            Assert.Equal(atModel.PixelAccuracy, own.PixelAccuracy);
        }
        using var fromPixels = SegmentationDataset.FromPixels(new float[3 * 4 * 4], new long[4 * 4], new InputSize(4, 4), 3, 255);
        Assert.Null(fromPixels.MaskPaths);
    }

    [Theory]
    [InlineData(SegmentationHeadKind.Linear, 40, 24)]
    [InlineData(SegmentationHeadKind.Pyramid, 40, 24)]
    [InlineData(SegmentationHeadKind.Pyramid, 24, 28)]   // a 6x7 grid: the 0.5 level floors 7 to 3 and is resized back to 28 rows, not doubled
    public void TrainsAStepRoundTripsItsFileAndExportsWithParity(SegmentationHeadKind head, int width, int height)
    {
        var size = new InputSize(width, height);
        var (images, _, masks) = DenseTestData.Write(dir, 4);
        using var data = SegmentationDataset.Load(images, masks, size, numClasses: 3);
        Assert.Equal(size, data.ImageSize);
        Assert.Equal(new long[] { 4, 3, height, width }, data.Images.shape);
        Assert.Equal(new long[] { 4, height, width }, data.Labels.shape);
        using (var streamed = SegmentationDataset.Stream(images, masks, size, numClasses: 3))
        {
            var (si, sl) = streamed.Head(4);
            using (si) using (sl)
                Assert.True(OfficialFixture.Identical(data.Images, si) && OfficialFixture.Identical(data.Labels, sl), "streamed rows differ from the in-memory set");
        }

        manual_seed(2);
        using var model = new SegmentationModel(new SegmentationConfig(Encoder(size), 3, head, PyramidChannels: 8));
        using (var logits = model.forward(data.Images[..1])) Assert.Equal(new long[] { 1, 3, height, width }, logits.shape);
        var result = SegmentationTrainer.Train(model, data, new DenseTrainingOptions { Epochs = 1, BatchSize = 2, MinScale = 0.6, Flip = true });
        Assert.Equal(2, result.Steps);
        Assert.True(double.IsFinite(result.LastEpochLoss), $"loss {result.LastEpochLoss}");
        var metrics = SegmentationTrainer.Evaluate(model, data);
        Assert.Equal(4L * width * height, metrics.Pixels);   // the generated masks label every pixel

        // the model file records both sides and loads the same model
        var file = Path.Combine(dir, "seg.maeml");
        SegmentationModelFile.Save(model, file, ["bg", "square", "circle"], 255);
        Assert.Equal(height, DenseModelFile.ReadHeader(file).Config["Encoder"]!["ImageHeight"]!.GetValue<int>());
        var (loaded, _) = SegmentationModelFile.Load(file);
        using (loaded)
        using (no_grad())
        {
            Assert.Equal(model.Config.Encoder, loaded.Config.Encoder);
            model.eval();
            using var a = model.forward(data.Images);
            using var b = loaded.forward(data.Images);
            Assert.True(OfficialFixture.Identical(a, b), "the reloaded model's logits differ");
        }

        // ONNX: input [N, 3, H, W], class maps [N, H, W], and the class map at the original image's size
        var onnx = Path.Combine(dir, "seg.onnx");
        var proto = SegmentationOnnxExporter.Export(model, onnx, new SegmentationOnnxOptions { IncludeProbabilities = true, ImageSizeOutput = true });
        var input = proto.Graph.Input.Single(i => i.Name == SegmentationOnnxNames.Pixels);
        Assert.Equal(new long[] { 3, height, width }, input.Type.TensorType.Shape.Dim.Skip(1).Select(d => d.DimValue));
        Assert.Equal(height.ToString(), proto.MetadataProps.Single(p => p.Key == "maeml.image_height").Value);
        var r = SegmentationOnnxParity.Check(model, onnx, images: 2, seed: 1);
        output.WriteLine(r.ToString());
        Assert.Equal(2L * width * height, r.ModelPixels);
        Assert.Equal((long)2 * r.Width * r.Height, r.ImagePixels);
        Assert.True(r.Passed, r.ToString());
    }

    [Fact]
    public void ASquareModelFileHasNoHeightAndLoadsSquare()
    {
        manual_seed(3);
        using var model = new SegmentationModel(new SegmentationConfig(Encoder(32), 3, SegmentationHeadKind.Linear));
        var file = Path.Combine(dir, "square.maeml");
        SegmentationModelFile.Save(model, file, [], 255);
        var encoder = (JsonObject)DenseModelFile.ReadHeader(file).Config["Encoder"]!;
        Assert.False(encoder.ContainsKey("ImageHeight"), "a square file must be written as before non-square inputs");
        var (loaded, _) = SegmentationModelFile.Load(file);
        using (loaded)
        {
            Assert.True(loaded.Config.Encoder.IsSquare);
            Assert.Equal(new InputSize(32, 32), loaded.Config.Encoder.InputSize);
        }
    }
}
