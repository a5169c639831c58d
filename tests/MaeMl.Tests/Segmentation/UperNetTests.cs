using MaeMl.Model;
using MaeMl.Onnx;
using MaeMl.Segmentation;
using MaeMl.Tests.Onnx;
using MaeMl.Training;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Segmentation;

/// <summary>The UperNet head (mmseg's UPerHead on the simple feature pyramid): names, shapes on non-square levels, layer-decay groups,
/// training, the model file and ONNX parity at a size whose coarsest level (5 x 5) is not a multiple of the 2, 3 and 6 bins.</summary>
[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public sealed class UperNetTests(ITestOutputHelper output) : IDisposable
{
    readonly string dir = TestImages.TempDir("upernet");
    public void Dispose() => Directory.Delete(dir, true);

    static SegmentationModel NewModel(int imageSize = 32, int seed = 5)
    {
        manual_seed(seed);
        return new SegmentationModel(new SegmentationConfig(DenseTestData.TinyEncoder(imageSize), 3, SegmentationHeadKind.UperNet, PyramidChannels: 8));
    }

    [Fact]
    public void HasMmsegModuleNamesAndPutsTheHeadAtTheTopLayer()
    {
        using var model = NewModel();
        var keys = model.state_dict().Keys.ToHashSet();
        foreach (var key in new[]
        {
            "head.psp_modules.0.1.conv.weight", "head.psp_modules.3.1.ln.weight", "head.bottleneck.conv.weight", "head.bottleneck.ln.bias",
            "head.lateral_convs.0.conv.weight", "head.lateral_convs.2.ln.weight", "head.fpn_convs.2.conv.weight", "head.fpn_bottleneck.conv.weight",
            "head.conv_seg.weight", "head.conv_seg.bias", "backbone.simfp_4.1.weight", "backbone.net.blocks.1.attn.qkv.weight",
        })
            Assert.Contains(key, keys);
        Assert.DoesNotContain("head.lateral_convs.3.conv.weight", keys);   // 4 levels: 3 laterals, the top one is the PPM's
        Assert.DoesNotContain("head.bottleneck.conv.bias", keys);          // a norm follows every conv: no bias (mmcv's bias='auto')
        Assert.Equal([8L, 40, 3, 3], model.state_dict()["head.bottleneck.conv.weight"].shape);      // level + 4 pooled maps
        Assert.Equal([8L, 32, 3, 3], model.state_dict()["head.fpn_bottleneck.conv.weight"].shape);  // 4 levels

        using var x = randn(2, 3, 32, 32);
        using var low = model.ForwardLowRes(x);
        Assert.Equal([2L, 3, 16, 16], low.shape);   // the finest level (stride 2)
        using var logits = model.forward(x);
        Assert.Equal([2L, 3, 32, 32], logits.shape);

        // layer decay: the ViT's layers are scaled, the pyramid and every head parameter stay at the lr (scale 1)
        int layers = model.Vit.NumLayers;
        var (groups, scales) = ParameterGroups.DenseAdamWGroups(model, DenseTraining.VitParameterName, 1e-3, 0.5, 0.05, 0.7, layers);
        var scaleOf = new Dictionary<IntPtr, double>();
        for (int i = 0; i < groups.Count; i++) foreach (var p in groups[i].Parameters) scaleOf[p.Handle] = scales[i];
        var named = model.named_parameters().ToList();
        Assert.Equal(named.Count, scaleOf.Count);
        Assert.All(named.Where(np => np.name.StartsWith("head.")), np => Assert.Equal(1.0, scaleOf[np.parameter.Handle]));
        Assert.All(named.Where(np => np.name.StartsWith("backbone.net.")), np => Assert.True(scaleOf[np.parameter.Handle] < 1));
    }

    [Fact]
    public void HeadFollowsTheActualSizeOfNonSquareLevels()
    {
        manual_seed(2);
        using var head = new UperHead(channels: 8, levels: 3, numClasses: 4);
        head.eval();
        using var scope = NewDisposeScope();
        var logits = head.forward([randn(2, 8, 13, 9), randn(2, 8, 7, 5), randn(2, 8, 3, 2)]);
        Assert.Equal([2L, 4, 13, 9], logits.shape);
        Assert.Throws<ArgumentException>(() => new SegmentationConfig(DenseTestData.TinyEncoder(), 3, SegmentationHeadKind.UperNet, PyramidScales: [1.0, 2.0]).Validate());
        Assert.Equal(new[] { (52, 36), (26, 18), (13, 9), (6, 4) }, DenseOnnxWriter.PyramidLevelSizes(13, 9, [4.0, 2.0, 1.0, 0.5]));   // MaxPool2d(2, 2) floors
    }

    [Fact]
    public void TrainsAFewStepsWithADecreasingLossAndTheFileGivesIdenticalLogits()
    {
        var (images, _, masks) = DenseTestData.Write(dir, 8);
        using var data = SegmentationDataset.Load(images, masks, size: 32, numClasses: 3, ignoreValue: 255);
        using var model = NewModel();
        double Loss()
        {
            model.eval();
            using var _ = no_grad();
            using var logits = model.forward(data.Images);
            using var loss = SegmentationModel.Loss(logits, data.Labels, data.IgnoreIndex);
            return loss.item<float>();
        }
        double before = Loss();
        var result = SegmentationTrainer.Train(model, data, new DenseTrainingOptions { Epochs = 4, BatchSize = 4, Lr = 3e-3, BackboneLrScale = 1, WarmupEpochs = 1 });
        double after = Loss();
        output.WriteLine($"{result.Steps} steps: training-set loss {before:F4} -> {after:F4}");
        Assert.Equal(8, result.Steps);
        Assert.True(after < 0.7 * before, $"loss {before:F4} -> {after:F4}");

        var file = Path.Combine(dir, "upernet.model");
        SegmentationModelFile.Save(model, file, ["bg", "square", "circle"], 255);
        var (loaded, header) = SegmentationModelFile.Load(file);
        using (loaded)
        {
            Assert.Equal(SegmentationHeadKind.UperNet, loaded.Config.Head);
            Assert.Equal(["bg", "square", "circle"], header.ClassNames);
            model.eval();
            using var _ = no_grad();
            using var x = data.Images[..3];
            using var a = model.forward(x);
            using var b = loaded.forward(x);
            Assert.True(a.eq(b).all().item<bool>(), "the reloaded model's logits differ");
        }
    }

    [Fact]
    public void OnnxExportMatchesTorchSharpWhereTheCoarsestLevelIsNotAMultipleOfTheBins()
    {
        using var model = NewModel(imageSize: 80, seed: 9);   // grid 10: levels 40, 20, 10, 5
        OnnxTestModels.Perturb(model);
        using (no_grad())
            foreach (var (name, p) in model.named_parameters().Where(np => np.name == "head.conv_seg.weight")) p.normal_(0, 0.5);   // peaked probabilities
        model.eval();
        var onnx = Path.Combine(dir, "upernet.onnx");
        var proto = SegmentationOnnxExporter.Export(model, onnx, new SegmentationOnnxOptions { IncludeProbabilities = true, ImageSizeOutput = true });
        Assert.Contains(proto.Graph.Node, n => n.OpType == "MatMul" && n.Output[0].StartsWith("head.psp_modules.2.0"));   // pooling as averaging matrices
        Assert.Equal("UperNet", proto.MetadataProps.Single(m => m.Key == "maeml.head").Value);
        var r = SegmentationOnnxParity.Check(model, onnx, images: 2, seed: 1);
        output.WriteLine($"{r}");
        Assert.True(r.MaxProbabilityDiff < 1e-4f, $"max probability diff {r.MaxProbabilityDiff}");
        Assert.Equal(0, r.DifferingNotTied);
        Assert.True(r.ResizeExact);
        Assert.True(r.Passed);
    }
}
