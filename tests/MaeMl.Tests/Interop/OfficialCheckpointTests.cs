using MaeMl.Interop;
using MaeMl.Model;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Interop;

/// <summary>The official PyTorch checkpoints of the fixture (written by torch.save in facebookresearch/mae's format).</summary>
[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public class OfficialCheckpointTests(ITestOutputHelper output)
{
    static readonly MaeLoadOptions FixtureHeads = new() { NumHeads = 2, DecoderNumHeads = 2 };

    [Fact]
    public void FullCheckpointReproducesTheOfficialLossAndPrediction()
    {
        using var scope = NewDisposeScope();
        using var model = MaeModelFile.LoadMae(OfficialFixture.PathOf("checkpoint-full.pth"), FixtureHeads, out var report);
        output.WriteLine(report.ToString());
        Assert.True(report.IsComplete);
        Assert.Equal(OfficialFixture.Config, model.Config);
        Assert.Contains(report.Notes, n => n.Contains("under 'model'"));

        var result = model.Forward(OfficialFixture.Npy("input.npy"), OfficialFixture.Npy("noise.npy"));
        var predErr = OfficialFixture.MaxAbsDiff(result.Pred, OfficialFixture.Npy("pred.npy"));
        var lossErr = Math.Abs(result.Loss.item<float>() - OfficialFixture.Npy("loss.npy").item<float>());
        output.WriteLine($"checkpoint-full.pth: pred max abs err {predErr:E2}, loss abs err {lossErr:E2}");
        Assert.InRange(predErr, 0, 1e-5);
        Assert.InRange(lossErr, 0, 1e-5);
    }

    [Fact]
    public void FullCheckpointHoldsExactlyTheFixtureWeights()
    {
        var state = MaeModelFile.ReadStateDict(OfficialFixture.PathOf("checkpoint-full.pth"));
        var reference = OfficialFixture.StateDict();
        Assert.Equal(reference.Keys.OrderBy(k => k), state.Keys.OrderBy(k => k));
        foreach (var (name, value) in reference) Assert.True(OfficialFixture.Identical(value, state[name]), name);
    }

    [Fact]
    public void EncoderCheckpointGivesTheOfficialLatent()
    {
        using var scope = NewDisposeScope();
        var path = OfficialFixture.PathOf("checkpoint-encoder.pth");
        // strict by default: an encoder-only file does not make a complete MAE
        var ex = Assert.Throws<InvalidDataException>(() => MaeModelFile.LoadMae(path, FixtureHeads));
        Assert.Contains("checkpoint-encoder.pth", ex.Message);
        Assert.Contains("only the encoder", ex.Message);

        var options = FixtureHeads with { AllowMissingDecoder = true, Template = OfficialFixture.Config };
        using var model = MaeModelFile.LoadMae(path, options, out var report);
        output.WriteLine(report.ToString());
        Assert.Empty(report.Missing);
        Assert.Contains("decoder_pred.weight", report.Initialised);
        Assert.Contains(report.Notes, n => n.Contains("decoder is left at its initialisation"));

        var (latent, _, _) = model.ForwardEncoder(OfficialFixture.Npy("input.npy"), model.Config.MaskRatio, OfficialFixture.Npy("noise.npy"));
        var latentErr = OfficialFixture.MaxAbsDiff(latent, OfficialFixture.Npy("latent.npy"));
        output.WriteLine($"checkpoint-encoder.pth: latent max abs err {latentErr:E2}");
        Assert.InRange(latentErr, 0, 1e-5);
    }

    [Fact]
    public void MissingHeadCountIsExplained()
    {
        var ex = Assert.Throws<InvalidDataException>(() => MaeModelFile.LoadMae(OfficialFixture.PathOf("checkpoint-full.pth")));
        Assert.Contains("checkpoint-full.pth", ex.Message);
        Assert.Contains("attention heads cannot be read from tensor shapes", ex.Message);
        Assert.Contains("--heads", ex.Message);
    }

    [Fact]
    public void APresetWhoseHeadsDoNotFitTheFileIsReportedWithTheFile()
    {
        var ex = Assert.Throws<InvalidDataException>(() => MaeModelFile.LoadMae(OfficialFixture.PathOf("checkpoint-full.pth"), new MaeLoadOptions { Preset = "mae_vit_base_patch16" }));
        Assert.Contains("checkpoint-full.pth", ex.Message);
        Assert.Contains("heads (12) do not divide the encoder width (32)", ex.Message);
    }

    [Fact]
    public void HeadsOfThePaperArchitecturesComeFromTheirShapes()
    {
        // ViT-B/16 MAE (mae_visualize_vit_base.pth): shapes only, no weights needed
        var shapes = new Dictionary<string, long[]>
        {
            ["patch_embed.proj.weight"] = new long[] { 768, 3, 16, 16 }, ["pos_embed"] = new long[] { 1, 197, 768 },
            ["blocks.11.mlp.fc1.weight"] = new long[] { 3072, 768 }, ["blocks.0.mlp.fc1.weight"] = new long[] { 3072, 768 },
            ["decoder_embed.weight"] = new long[] { 512, 768 }, ["decoder_blocks.7.norm1.weight"] = new long[] { 512 },
        };
        var notes = new List<string>();
        var inferred = ConfigInference.ReadShapes(shapes, "vit-b.pth");
        var config = ConfigInference.InferMae(inferred, "vit-b.pth", new MaeLoadOptions(), null, notes);
        Assert.Equal(MaePresets.MaeVitBasePatch16Dec512d8b with { NormPixLoss = config.NormPixLoss }, config);
        Assert.Contains(notes, n => n.Contains("encoder heads: 12") && n.Contains("mae_vit_base_patch16"));
    }

    [Fact]
    public void StrictLoadingListsMissingUnexpectedAndMisShapedTensors()
    {
        using var scope = NewDisposeScope();
        var dir = TempDir.Create();
        var state = OfficialFixture.StateDict();
        state.Remove("norm.bias");
        state["blocks.0.extra"] = zeros(3);
        state["decoder_pred.bias"] = zeros(7);
        var path = Path.Combine(dir, "damaged.pth");
        MaeModelFile.SaveStateDict(state, path);

        var ex = Assert.Throws<StateDictMismatchException>(() => MaeModelFile.LoadMae(path, FixtureHeads));
        output.WriteLine(ex.Message);
        Assert.Contains("damaged.pth", ex.Message);
        Assert.Equal(new[] { "norm.bias" }, ex.Report.Missing);
        Assert.Equal(new[] { "blocks.0.extra" }, ex.Report.Unexpected);
        Assert.Equal("decoder_pred.bias", Assert.Single(ex.Report.Mismatched).Name);
        Assert.Contains("decoder_pred.bias: file [7], model [48]", ex.Message);

        using var model = MaeModelFile.LoadMae(path, FixtureHeads with { Strict = false }, out var report);
        output.WriteLine(report.ToString());
        Assert.Equal(state.Count - 2, report.Loaded.Count);
        var p = model.state_dict();
        Assert.True(OfficialFixture.Identical(p["blocks.1.mlp.fc1.weight"], state["blocks.1.mlp.fc1.weight"]));
        Assert.Equal(0f, p["norm.bias"].abs().sum().item<float>());   // left at initialisation
    }

    [Fact]
    public void OurModelRoundTripsThroughPthBitExactly()
    {
        using var scope = NewDisposeScope();
        var dir = TempDir.Create();
        torch.manual_seed(7);
        using var model = new MaskedAutoencoderViT(OfficialFixture.Config);
        var path = Path.Combine(dir, "ours.pth");
        MaeModelFile.Save(model, path);
        Assert.Equal(ModelFileFormat.PyTorch, ModelFileFormats.Detect(path));

        var contents = PyTorchCheckpointFile.Read(path);
        Assert.Equal("model", contents.Key);   // {'model': state_dict}, as models_mae's users load it
        using var back = MaeModelFile.LoadMae(path, FixtureHeads);
        AssertSameWeights(model, back);
        Assert.Equal(model.Config, back.Config);
    }

    [Fact]
    public void BareStateDictFilesLoadToo()
    {
        using var scope = NewDisposeScope();
        var path = Path.Combine(TempDir.Create(), "bare.pth");
        var reference = OfficialFixture.StateDict();
        PyTorchCheckpointFile.Write(path, reference, key: null);   // torch.save(model.state_dict(), path)
        var contents = PyTorchCheckpointFile.Read(path);
        Assert.Null(contents.Key);
        foreach (var (name, value) in reference) Assert.True(OfficialFixture.Identical(value, contents.StateDict[name]), name);
        using var model = MaeModelFile.LoadMae(path, FixtureHeads);
        Assert.True(OfficialFixture.Identical(reference["norm.weight"], model.state_dict()["norm.weight"]));
    }

    [Fact]
    public void HalfPrecisionFilesAreWidenedAndSaid()
    {
        using var scope = NewDisposeScope();
        var path = Path.Combine(TempDir.Create(), "half.safetensors");
        var reference = OfficialFixture.StateDict();
        MaeModelFile.SaveStateDict(reference.ToDictionary(kv => kv.Key, kv => kv.Value.to_type(ScalarType.BFloat16)), path);
        using var model = MaeModelFile.LoadMae(path, FixtureHeads, out var report);
        Assert.Contains("50 tensor(s) converted from BFloat16 to Float32", report.Notes);
        Assert.InRange(OfficialFixture.MaxAbsDiff(reference["blocks.0.mlp.fc1.weight"], model.state_dict()["blocks.0.mlp.fc1.weight"]), 0, 0.01);
    }

    [Theory]
    [InlineData("ours.safetensors", StateDictNaming.Official)]
    [InlineData("ours-hf.safetensors", StateDictNaming.HuggingFace)]
    [InlineData("ours-hf.pth", StateDictNaming.HuggingFace)]
    [InlineData("ours.maeml", StateDictNaming.Official)]
    public void OurModelRoundTripsThroughEveryFormatBitExactly(string file, StateDictNaming naming)
    {
        using var scope = NewDisposeScope();
        var dir = TempDir.Create();
        torch.manual_seed(8);
        using var model = new MaskedAutoencoderViT(OfficialFixture.Config);
        var path = Path.Combine(dir, file);
        MaeModelFile.Save(model, path, naming);
        using var back = MaeModelFile.LoadMae(path, FixtureHeads);
        AssertSameWeights(model, back);
    }

    [Fact]
    public void ClassifierLoadsFromFineTunedAndPretrainFiles()
    {
        using var scope = NewDisposeScope();
        var dir = TempDir.Create();
        var encoder = OfficialFixture.Config;
        torch.manual_seed(9);
        using var vit = new VisionTransformer(new VitClassifierConfig(encoder, NumClasses: 5, GlobalPool: true));
        var path = Path.Combine(dir, "finetuned.pth");
        MaeModelFile.Save(vit, path);

        // a fine-tuned file: head and fc_norm come back, the classes and pooling are read from it
        using var back = MaeModelFile.LoadClassifier(path, FixtureHeads, out var report);
        Assert.True(report.IsComplete, report.ToString());
        Assert.Equal(5, back.Config.NumClasses);
        Assert.True(back.Config.GlobalPool);
        using var x = randn(2, 3, 16, 16);
        using (no_grad()) Assert.True(OfficialFixture.Identical(vit.forward(x), back.forward(x)));
        // a MAE file is not a classifier
        Assert.Throws<InvalidDataException>(() => MaeModelFile.LoadMae(path, FixtureHeads));
        // fine-tuning at a higher resolution: the learnable table is interpolated, as main_finetune.py does
        using (var big = MaeModelFile.LoadClassifier(path, FixtureHeads with { ImageSize = 24 }, out var bigReport))
        {
            Assert.Equal("pos_embed [1, 17, 32] -> [1, 37, 32] (bicubic)", Assert.Single(bigReport.Interpolated));
            Assert.Equal(new long[] { 1, 5 }, big.forward(randn(1, 3, 24, 24)).shape);
        }

        // fine-tuning start from the full MAE file: decoder ignored, norm unused (global pool), head + fc_norm initialised
        using var start = MaeModelFile.LoadClassifier(OfficialFixture.PathOf("checkpoint-full.pth"), FixtureHeads with { NumClasses = 10 }, out var startReport);
        output.WriteLine(startReport.ToString());
        Assert.Empty(startReport.Missing);
        Assert.Empty(startReport.Unexpected);
        Assert.Equal(new[] { "fc_norm.bias", "fc_norm.weight", "head.bias", "head.weight" }, startReport.Initialised.Order());
        Assert.Contains("norm.weight", startReport.Ignored);
        Assert.Contains("decoder_pred.weight", startReport.Ignored);
        Assert.True(OfficialFixture.Identical(start.state_dict()["blocks.1.attn.qkv.weight"], OfficialFixture.Npy("state_dict/blocks.1.attn.qkv.weight.npy")));
    }

    internal static void AssertSameWeights(nn.Module expected, nn.Module actual)
    {
        var a = expected.state_dict();
        var b = actual.state_dict();
        Assert.Equal(a.Keys.OrderBy(k => k), b.Keys.OrderBy(k => k));
        foreach (var (name, value) in a) Assert.True(OfficialFixture.Identical(value, b[name]), $"{name} differs after the round trip");
    }
}
