using MaeMl.Interop;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Interop;

/// <summary>Files written by real PyTorch in the layouts of facebookresearch/mae's training and fine-tuning scripts
/// (Fixtures/pytorch-checkpoints, made by tools/pytorch/make_training_fixtures.py with torch 1.13).</summary>
public class PyTorchWrittenCheckpointTests(ITestOutputHelper output)
{
    static string PathOf(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "pytorch-checkpoints", name);
    static readonly MaeLoadOptions FixtureHeads = new() { NumHeads = 2, DecoderNumHeads = 2 };

    [Fact]
    public void TrainingCheckpointWithOptimizerEpochScalerAndArgsLoadsItsModel()
    {
        using var scope = NewDisposeScope();
        // misc.save_model's layout: model.state_dict() is an OrderedDict with _metadata, args an argparse.Namespace
        using var model = MaeModelFile.LoadMae(PathOf("checkpoint-1.pth"), FixtureHeads, out var report);
        output.WriteLine(report.ToString());
        Assert.True(report.IsComplete);
        var note = Assert.Single(report.Notes, n => n.StartsWith("format:"));
        Assert.Contains("under 'model'", note);
        foreach (var entry in new[] { "optimizer", "epoch", "scaler", "args" }) Assert.Contains(entry, note);
        var sd = model.state_dict();
        Assert.True(OfficialFixture.Identical(NpyFile.Load(PathOf("checkpoint-1.blocks.0.attn.qkv.weight.npy")), sd["blocks.0.attn.qkv.weight"]));
        Assert.True(OfficialFixture.Identical(NpyFile.Load(PathOf("checkpoint-1.pos_embed.npy")), sd["pos_embed"]));
        // one AdamW step away from the fixture's initial weights
        Assert.False(OfficialFixture.Identical(OfficialFixture.Npy("state_dict/blocks.0.attn.qkv.weight.npy"), sd["blocks.0.attn.qkv.weight"]));
    }

    [Fact]
    public void LoadReturnsTheModelTheFileHolds()
    {
        using (var classifier = MaeModelFile.Load(PathOf("finetuned.pth"), FixtureHeads, out _))
            Assert.Equal(10, Assert.IsType<MaeMl.Model.VisionTransformer>(classifier).Config.NumClasses);
        using (var mae = MaeModelFile.Load(PathOf("checkpoint-1.pth"), FixtureHeads, out _))
            Assert.IsType<MaeMl.Model.MaskedAutoencoderViT>(mae);
    }

    [Fact]
    public void FineTunedClassifierReproducesPyTorchLogits()
    {
        using var scope = NewDisposeScope();
        using var model = MaeModelFile.LoadClassifier(PathOf("finetuned.pth"), FixtureHeads, out var report);
        output.WriteLine(report.ToString());
        Assert.True(report.IsComplete);
        Assert.Equal(10, model.Config.NumClasses);
        Assert.True(model.Config.GlobalPool);
        model.eval();
        using var _ = no_grad();
        var logits = model.forward(OfficialFixture.Npy("input.npy"));
        var err = OfficialFixture.MaxAbsDiff(logits, NpyFile.Load(PathOf("finetuned.logits.npy")));
        output.WriteLine($"finetuned.pth: logits max abs err {err:E2}");
        Assert.InRange(err, 0, 1e-5);
    }
}
