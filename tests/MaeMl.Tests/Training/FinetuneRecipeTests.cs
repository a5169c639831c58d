using MaeMl.Data;
using MaeMl.Model;
using MaeMl.Training;
using SkiaSharp;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Training;

/// <summary>The pieces of the fine-tuning recipe: layer decay groups, mixup/cutmix, soft-target loss, RandAugment, random erasing, LARS.</summary>
public class FinetuneRecipeTests
{
    static readonly MaeConfig Tiny = TestModels.Tiny;

    [Fact]
    public void LayerDecayAssignsBeitLayerIdsAndTimmNoDecayGroups()
    {
        using var model = new VisionTransformer(new VitClassifierConfig(Tiny, 5));
        Assert.Equal(3, model.NumLayers);
        Assert.Equal(0, LayerDecay.LayerId("cls_token", 3));
        Assert.Equal(0, LayerDecay.LayerId("pos_embed", 3));
        Assert.Equal(0, LayerDecay.LayerId("patch_embed.proj.weight", 3));
        Assert.Equal(1, LayerDecay.LayerId("blocks.0.attn.qkv.weight", 3));
        Assert.Equal(2, LayerDecay.LayerId("blocks.1.mlp.fc2.bias", 3));
        Assert.Equal(3, LayerDecay.LayerId("head.weight", 3));
        Assert.Equal(3, LayerDecay.LayerId("fc_norm.bias", 3));

        var groups = LayerDecay.Groups(model, 0.05, 0.75);
        var byName = groups.SelectMany(g => g.Group.ParameterNames.Select(n => (n, g.Group))).ToDictionary(x => x.n, x => x.Group);
        Assert.Equal(model.named_parameters().Count(), byName.Count);
        Assert.Equal(0.0, byName["cls_token"].WeightDecay);
        Assert.Equal(0.0, byName["pos_embed"].WeightDecay);
        Assert.Equal(0.0, byName["blocks.0.norm1.weight"].WeightDecay);
        Assert.Equal(0.0, byName["head.bias"].WeightDecay);
        Assert.Equal(0.05, byName["patch_embed.proj.weight"].WeightDecay);
        Assert.Equal(0.05, byName["head.weight"].WeightDecay);
        Assert.Equal(Math.Pow(0.75, 3), byName["patch_embed.proj.weight"].LrScale, 12);
        Assert.Equal(Math.Pow(0.75, 2), byName["blocks.0.attn.proj.weight"].LrScale, 12);
        Assert.Equal(0.75, byName["blocks.1.attn.proj.weight"].LrScale, 12);
        Assert.Equal(1.0, byName["head.weight"].LrScale, 12);

        var (adamGroups, scales) = LayerDecay.AdamWGroups(model, 1e-3, 0.05, 0.75);
        Assert.Equal(groups.Count, adamGroups.Count);
        Assert.Equal(groups.Select(g => g.Group.LrScale), scales);
    }

    [Fact]
    public void SoftTargetCrossEntropyMatchesCrossEntropyAndLabelSmoothing()
    {
        using var scope = NewDisposeScope();
        var logits = randn(6, 4, generator: new TorchSharp.torch.Generator(1));
        var labels = tensor(new long[] { 0, 1, 2, 3, 1, 0 });
        var hard = SoftTargetCrossEntropy.Loss(logits, SoftTargetCrossEntropy.OneHot(labels, 4, 0)).item<float>();
        Assert.Equal(nn.functional.cross_entropy(logits, labels).item<float>(), hard, 5);
        var smooth = SoftTargetCrossEntropy.OneHot(labels, 4, 0.1);
        Assert.Equal(1.0 - 0.1 + 0.025, smooth[0, 0].item<float>(), 6);
        Assert.Equal(0.025, smooth[0, 1].item<float>(), 6);
        Assert.All(smooth.sum(1).data<float>().ToArray(), s => Assert.Equal(1f, s, 5));
    }

    [Fact]
    public void MixupAndCutmixMixImagesAndTargetsWithTheSameLambda()
    {
        using var scope = NewDisposeScope();
        var images = arange(4 * 3 * 8 * 8, ScalarType.Float32).view(4, 3, 8, 8);
        var labels = tensor(new long[] { 0, 1, 2, 1 });
        var mixupOnly = new Mixup(new MixupOptions { CutmixAlpha = 0, LabelSmoothing = 0 }, 3);
        var (mixed, targets) = mixupOnly.Apply(images, labels, new Random(3), out var lam);
        Assert.InRange(lam, 0, 1);
        Assert.True(allclose(mixed, images * lam + images.flip(0) * (1 - lam)));
        Assert.Equal(lam, targets[0, 0].item<float>(), 5);            // label 0 mixed with the flipped sample's label 1
        Assert.Equal(1 - lam, targets[0, 1].item<float>(), 5);

        var cutmixOnly = new Mixup(new MixupOptions { MixupAlpha = 0, LabelSmoothing = 0.1 }, 3);
        for (int seed = 0; seed < 10; seed++)
        {
            var (cut, soft) = cutmixOnly.Apply(images, labels, new Random(seed), out var lamCut);
            var fromFlipped = cut.ne(images).any(1).to(ScalarType.Float32).mean(new long[] { 1, 2 });   // pixels replaced, per image
            Assert.Equal(1 - lamCut, fromFlipped[0].item<float>(), 5);
            Assert.All(soft.sum(1).data<float>().ToArray(), s => Assert.Equal(1f, s, 5));
        }

        var none = new Mixup(MixupOptions.None, 3);
        var (same, oneHot) = none.Apply(images, labels, new Random(0), out var one);
        Assert.Equal(1.0, one);
        Assert.True(same.eq(images).all().item<bool>());
        Assert.Equal(1f, oneHot[2, 2].item<float>());
        for (int i = 0; i < 1000; i++) Assert.InRange(Mixup.Beta(new Random(i), 0.8), 0, 1);
    }

    [Fact]
    public void RandAugmentRunsEveryOpAndIsDeterministicPerSeed()
    {
        using var image = TestImages.Draw(24, 1, new Random(0));
        foreach (var op in Enum.GetValues<RandAugment.Op>())
        {
            var policy = new RandAugment(NumOps: 3, Magnitude: 9, Ops: [op]);
            using var a = policy.Apply(image, new Random(5));
            using var b = policy.Apply(image, new Random(5));
            Assert.Equal(24, a.Width);
            Assert.Equal(24, a.Height);
            Assert.True(a.GetPixelSpan().SequenceEqual(b.GetPixelSpan()), $"{op} is not deterministic");
        }
        var transform = SampleTransforms.Finetune(16, 0.08, new RandAugment(), new RandomErasing(1.0));
        var chw = new float[3 * 16 * 16];
        transform(image, new Random(1), chw);
        Assert.All(chw, v => Assert.True(float.IsFinite(v)));
    }

    [Fact]
    public void RandomErasingReplacesOneBoxWithNoise()
    {
        var chw = new float[3 * 20 * 20];
        new RandomErasing(Probability: 1.0).Apply(chw, 3, 20, 20, new Random(2));
        int changed = chw.Count(v => v != 0);
        Assert.InRange(changed, 3, 3 * 400 / 3 + 3 * 40);
        var untouched = new float[3 * 20 * 20];
        new RandomErasing(Probability: 0).Apply(untouched, 3, 20, 20, new Random(2));
        Assert.All(untouched, v => Assert.Equal(0f, v));
    }

    [Fact]
    public void LarsScalesUpdatesByTheTrustRatioOnlyForMatrices()
    {
        using var scope = NewDisposeScope();
        var w = new TorchSharp.Modules.Parameter(ones(2, 2));
        var b = new TorchSharp.Modules.Parameter(ones(2));
        using var lars = new Lars([w, b], lr: 1.0, momentum: 0);
        w.grad = full(new long[] { 2, 2 }, 2f);
        b.grad = full(new long[] { 2 }, 2f);
        lars.Step();
        // ||w|| = 2, ||g|| = 4: w -= 1 * g * 0.001 * 2 / 4
        Assert.Equal(1 - 2 * 0.0005, w[0, 0].item<float>(), 6);
        Assert.Equal(-1f, b[0].item<float>(), 6);
    }
}
