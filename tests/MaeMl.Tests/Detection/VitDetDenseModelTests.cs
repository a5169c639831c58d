using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Detection;
using MaeMl.Model;
using MaeMl.Segmentation;
using MaeMl.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Detection;

/// <summary>Detectors and segmenters on the ViTDet backbone: a training step reaches the relative positions, files keep the setting.</summary>
[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public sealed class VitDetDenseModelTests : IDisposable
{
    readonly string dir = TestImages.TempDir("vitdet-dense");

    public void Dispose() => Directory.Delete(dir, true);

    /// <summary>40 px, patch 8: a 5 x 5 grid, window 3 padded to 6 x 6, block 1 global, relative positions, drop path 0.1.</summary>
    static MaeConfig Encoder => DenseTestData.TinyEncoder(40) with { DropPath = 0.1 };
    static readonly BackboneAttention Attention = new() { WindowSize = 3, GlobalBlocks = [1], RelativePositions = true };

    /// <summary>One AdamW step of <paramref name="loss"/> with the dense trainer's groups (layer decay 0.7); checks the loss is finite,
    /// every relative position table gets a non-zero finite gradient and moves off zero, and the unused cls token gets none.</summary>
    static void OneStep(nn.Module model, VisionTransformer vit, Func<Tensor> loss)
    {
        model.train();
        var (groups, _) = ParameterGroups.DenseAdamWGroups(model, DenseTraining.VitParameterName, 1e-3, 0.1, 0.05, layerDecay: 0.7, numLayers: vit.NumLayers);
        using var optimizer = new AdamW(groups, 1e-3);
        using var l = loss();
        Assert.True(float.IsFinite(l.item<float>()), $"loss {l.item<float>()}");
        optimizer.zero_grad();
        l.backward();
        var relPos = vit.named_parameters().Where(np => VitDetOps.IsRelativePosition(np.name)).ToList();
        Assert.Equal(2 * vit.Config.Encoder.Depth, relPos.Count);
        foreach (var (name, p) in relPos)
        {
            using var g = p.grad ?? throw new Xunit.Sdk.XunitException($"{name} has no gradient");
            var norm = g.norm().item<float>();
            Assert.True(float.IsFinite(norm) && norm > 0, $"{name}: gradient norm {norm}");
        }
        Assert.Null(vit.named_parameters().Single(np => np.name == "cls_token").parameter.grad);   // not in the sequence
        optimizer.step();
        foreach (var (name, p) in relPos) Assert.True(p.abs().max().item<float>() > 0, $"{name} still zero after the step");
    }

    [Fact]
    public void WindowedDetectorTrainsAStepIntoTheRelativePositions()
    {
        manual_seed(1);
        using var det = new DetectionModel(new DetectionConfig(Encoder, 2, PyramidChannels: 8) { Attention = Attention });
        Assert.Equal(Attention, det.Vit.BackboneAttention);
        var boxes = new[] { new[] { new BoxAnnotation(4, 6, 20, 30, 0) }, new[] { new BoxAnnotation(10, 10, 36, 24, 1) } };
        using var images = randn(2, 3, 40, 40);
        OneStep(det, det.Vit, () => { using var o = det.forward(images); return FcosLoss.Compute(det, o, boxes); });
    }

    [Theory]
    [InlineData(SegmentationHeadKind.Linear)]
    [InlineData(SegmentationHeadKind.Pyramid)]
    public void WindowedSegmenterTrainsAStepIntoTheRelativePositions(SegmentationHeadKind head)
    {
        manual_seed(2);
        using var seg = new SegmentationModel(new SegmentationConfig(Encoder, 3, head, PyramidChannels: 8) { Attention = Attention });
        using var images = randn(2, 3, 40, 40);
        using var labels = randint(0, 3, [2, 40, 40]);
        OneStep(seg, seg.Vit, () => { using var logits = seg.forward(images); return SegmentationModel.Loss(logits, labels, 255); });
    }

    [Fact]
    public void FilesKeepTheAttentionAndOlderFilesLoadAsGlobal()
    {
        manual_seed(3);
        using var seg = new SegmentationModel(new SegmentationConfig(Encoder, 3, SegmentationHeadKind.Pyramid, 8) { Attention = Attention });
        using (no_grad()) foreach (var (name, p) in seg.named_parameters()) if (VitDetOps.IsRelativePosition(name)) p.normal_();
        seg.eval();
        var path = Path.Combine(dir, "seg.maeml");
        SegmentationModelFile.Save(seg, path, ["a", "b", "c"], ignoreIndex: 255);
        var (loaded, header) = SegmentationModelFile.Load(path);
        using (loaded)
        using (no_grad())
        {
            var attention = loaded.Config.Attention!;
            Assert.Equal((3, true), (attention.WindowSize, attention.RelativePositions));
            Assert.Equal([1], attention.GlobalBlocks);
            Assert.Equal(3, header.Config["Attention"]!["WindowSize"]!.GetValue<int>());
            using var x = randn(1, 3, 40, 40);
            using var a = seg.forward(x);
            using var b = loaded.forward(x);
            Assert.True(a.eq(b).all().item<bool>());
        }

        manual_seed(4);
        using var det = new DetectionModel(new DetectionConfig(Encoder, 2, PyramidChannels: 8) { Attention = BackboneAttention.VitDet(Encoder.Depth) });
        var detPath = Path.Combine(dir, "det.maeml");
        DetectionModelFile.Save(det, detPath, ["x", "y"]);
        using (var reloaded = DetectionModelFile.Load(detPath).Model)
            Assert.Equal([0, 1], reloaded.Config.Attention!.GlobalBlocks);

        // a configuration written before the setting existed has no "Attention": it loads as today's global backbone
        var older = JsonSerializer.SerializeToNode(new SegmentationConfig(Encoder, 3, SegmentationHeadKind.Pyramid, 8))!.AsObject();
        Assert.True(older.Remove("Attention"));
        var config = older.Deserialize<SegmentationConfig>()!;
        Assert.Null(config.Attention);
        using var global = new SegmentationModel(config);
        Assert.False(global.Vit.BackboneAttention.TokenGrid);
        Assert.DoesNotContain(global.state_dict().Keys, VitDetOps.IsRelativePosition);
        var globalPath = Path.Combine(dir, "global.maeml");
        DenseModelFile.Write(globalPath, new DenseModelHeader("segmentation", older, ["a", "b", "c"]), global);
        using (var fromOlder = SegmentationModelFile.Load(globalPath).Model) Assert.Null(fromOlder.Config.Attention);
    }
}
