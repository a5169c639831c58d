using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using MaeMl.Checkpoints;
using MaeMl.Interop;
using MaeMl.Model;
using MaeMl.Training;
using TorchSharp;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace MaeMl.Tests.Training;

/// <summary>The hand-off to and from the official main_pretrain.py (util/misc.save_model / load_model): the torch-1.13-written
/// training checkpoint of Fixtures/pytorch-checkpoints is imported exactly and steps on as PyTorch does; an exported MaeMl run has
/// PyTorch's layout, every tensor, and passes our own pickle validator.</summary>
[Collection("TorchGlobalRng")]
public sealed class OfficialTrainingCheckpointTests(ITestOutputHelper output)
{
    static string Pth(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", "pytorch-checkpoints", name);
    static string CheckpointOne => Pth("checkpoint-1.pth");

    /// <summary>The official parameter order (models_mae named_parameters), from the fixture's manifest, independent of MaeMl.</summary>
    static List<(string Name, bool Trainable, int Dims)> OfficialParameters() =>
        OfficialFixture.Manifest.GetProperty("state_dict").EnumerateArray()
            .Select(e => (e.GetProperty("name").GetString()!, e.GetProperty("trainable").GetBoolean(), e.GetProperty("shape").GetArrayLength())).ToList();

    /// <summary>timm 0.3.2 add_weight_decay over the official order: [no decay (1-D or .bias), decay], trainable only.</summary>
    static ParameterGrouping OfficialTimmGrouping()
    {
        var p = OfficialParameters().Where(x => x.Trainable).ToList();
        bool NoDecay((string Name, bool, int Dims) x) => x.Dims == 1 || x.Name.EndsWith(".bias", StringComparison.Ordinal);
        return new("official add_weight_decay", [p.Where(NoDecay).Select(x => x.Name).ToList(), p.Where(x => !NoDecay(x)).Select(x => x.Name).ToList()]);
    }

    /// <summary>The single group the fixture's script used: AdamW(mae.parameters()).</summary>
    static ParameterGrouping OfficialAllParameters() => new("model.parameters()", [OfficialParameters().Select(x => x.Name).ToList()]);

    static double MaxDiff(Tensor a, Tensor b) => OfficialFixture.MaxAbsDiff(a, b);

    /// <summary>Gives every trainable parameter exactly the gradient <paramref name="grads"/>[name]: the gradient of sum(p * g) is g.</summary>
    static void SetGradients(nn.Module model, IReadOnlyDictionary<string, Tensor> grads)
    {
        using var scope = NewDisposeScope();
        Tensor? loss = null;
        foreach (var (name, p) in model.named_parameters())
            if (grads.TryGetValue(name, out var g)) { var term = (p * g).sum(); loss = loss is null ? term : loss + term; }
        loss!.backward();
    }

    static Dictionary<string, Tensor> FixtureGradients() =>
        OfficialFixture.Manifest.GetProperty("grads").EnumerateArray()
            .ToDictionary(e => e.GetProperty("name").GetString()!, e => OfficialFixture.Npy(e.GetProperty("file").GetString()!), StringComparer.Ordinal);

    static Dictionary<string, TorchSharp.Modules.AdamW.State> StateByName(nn.Module model, TorchSharp.Modules.AdamW optimizer)
    {
        var nameOf = model.named_parameters().ToDictionary(p => p.parameter.Handle, p => p.name);
        var states = optimizer.state_dict().State;
        var result = new Dictionary<string, TorchSharp.Modules.AdamW.State>(StringComparer.Ordinal);
        int i = 0;
        foreach (var g in optimizer.ParamGroups.Cast<TorchSharp.Modules.AdamW.ParamGroup>())
            foreach (var p in g.Parameters) result[nameOf[p.Handle]] = (TorchSharp.Modules.AdamW.State)states[i++];
        return result;
    }

    static MaeConfig FixtureConfig => OfficialFixture.Config;

    [Fact]
    public void MaeMlParameterOrderIsTheOfficialOne()
    {
        // the export numbers the optimizer's parameters in MaeMl's order; PyTorch's load_state_dict pairs them by position
        using var model = new MaskedAutoencoderViT(FixtureConfig);
        Assert.Equal(OfficialParameters().Select(x => x.Name), model.named_parameters().Select(p => p.name));
        var (decay, noDecay) = ParameterGroups.SplitWeightDecay(model);
        var timm = OfficialTimmGrouping();
        Assert.Equal(timm.Groups[0], noDecay.Select(x => x.Name));
        Assert.Equal(timm.Groups[1], decay.Select(x => x.Name));
    }

    /// <summary>(1) Import checkpoint-1.pth (torch 1.13, util/misc.save_model layout, AdamW after one step): weights, moments, step and
    /// epoch are the file's; one MaeMl AdamW step from the fixture's initial weights with PyTorch's gradients gives the file's values
    /// (so PyTorch's step and ours agree); and a second step from the imported file equals one from the same state held in memory.</summary>
    [Fact]
    public void ImportsTheTorchWrittenTrainingCheckpointAndStepsOnAsPyTorch()
    {
        using var scope = NewDisposeScope();
        var dir = TestImages.TempDir("handoff-import");
        var maeml = Path.Combine(dir, "imported.maeml");
        var result = OfficialTrainingCheckpoint.Import(CheckpointOne, maeml, new OfficialImportOptions { Load = new MaeLoadOptions { NumHeads = 2, DecoderNumHeads = 2 } });
        foreach (var n in result.Notes) output.WriteLine($"note: {n}");
        Assert.Equal(2, result.Epoch);            // 'epoch': 1 finished -> resume at 2
        Assert.Equal(1, result.OptimizerSteps);
        Assert.Contains(result.Notes, n => n.Contains("model.parameters()"));
        Assert.Contains(result.Notes, n => n.Contains("GradScaler"));

        var header = MaeCheckpoint.ReadHeader(maeml);
        Assert.Equal(FixtureConfig with { MaskRatio = 0.75, NormPixLoss = true }, header.Config);
        Assert.Equal(2, header.Training["epoch"]!.GetValue<int>());
        Assert.Equal(0, header.Training["step_in_epoch"]!.GetValue<int>());
        Assert.Equal(1, header.Training["optimizer_steps"]!.GetValue<long>());
        Assert.True(header.HasOptimizer);
        // the fixture's args: batch 2, 400 epochs, blr 1.5e-4, weight decay 0.05, lr None (-> blr x 2 / 256)
        var run = result.Run;
        Assert.Equal((400, 2, 1, 0.05), (run.Epochs, run.BatchSize, run.AccumIter, run.WeightDecay));
        Assert.Equal(1.5e-4 * 2 / 256, run.PeakLr, 12);

        // the file as our .pth reader sees it, named in the official order
        using var file = OfficialTrainingCheckpointFile.Read(CheckpointOne);
        Assert.Equal(1, file.Epoch);
        var (_, reference) = file.NameParameters([OfficialAllParameters()], CheckpointOne);
        Assert.Equal(48, reference.Count);   // pos_embed and decoder_pos_embed have no gradient, hence no state
        var fileModel = file.Model.ToDictionary(kv => kv.Key, kv => kv.Value);

        using var model = new MaskedAutoencoderViT(header.Config);
        using var optimizer = new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(model, 1, 0), 1, 0.9, 0.95);
        MaeCheckpoint.LoadInto(maeml, model, optimizer);
        foreach (var (name, t) in model.state_dict()) Assert.True(OfficialFixture.Identical(fileModel[name], t), $"weight {name} differs");
        var ours = StateByName(model, optimizer);
        foreach (var (name, st) in ours)
        {
            if (reference.TryGetValue(name, out var r))
            {
                Assert.Equal(1, st.step);
                Assert.True(OfficialFixture.Identical(r.ExpAvg, st.exp_avg), $"exp_avg of {name} differs");
                Assert.True(OfficialFixture.Identical(r.ExpAvgSq, st.exp_avg_sq), $"exp_avg_sq of {name} differs");
            }
            else Assert.Equal(0, st.step);
        }
        foreach (var g in optimizer.ParamGroups.Cast<TorchSharp.Modules.AdamW.ParamGroup>())
            Assert.Equal((1e-3, 0.9, 0.95, 1e-8, 0.05), (g.Options.LearningRate!.Value, g.Options.beta1!.Value, g.Options.beta2!.Value, g.Options.eps!.Value, g.Options.weight_decay!.Value));

        // PyTorch's step 1 (what wrote the file) = MaeMl's step 1 from the same weights and gradient, in the file's single group. The
        // file does not store that gradient; after one step exp_avg = (1 - beta1) g, so g is recovered to within an ulp from it. (The
        // fixture's grads/*.npy come from another torch build: they differ by up to 7e-8, which moves the update of parameters whose
        // gradient is near eps by up to 1.5e-4, so they test the forward/backward, not the optimizer.)
        var grads = reference.ToDictionary(kv => kv.Key, kv => kv.Value.ExpAvg / 0.1f, StringComparer.Ordinal);
        using var inMemory = OfficialFixture.Model();
        using var single = new MaeMl.Training.AdamW([new TorchSharp.Modules.AdamW.ParamGroup(inMemory.parameters(), 1e-3, 0.9, 0.95, 1e-8, 0.05)], 1e-3, 0.9, 0.95);
        SetGradients(inMemory, grads);
        single.step();
        single.zero_grad();
        double weightErr = inMemory.state_dict().Max(kv => MaxDiff(kv.Value, fileModel[kv.Key]));
        double weightScale = fileModel.Values.Max(t => t.abs().max().item<float>());
        var mem = StateByName(inMemory, single);
        double m1Err = reference.Max(kv => MaxDiff(mem[kv.Key].exp_avg, kv.Value.ExpAvg));
        double m2Err = reference.Max(kv => MaxDiff(mem[kv.Key].exp_avg_sq, kv.Value.ExpAvgSq));
        double m1Scale = reference.Values.Max(s => s.ExpAvg.abs().max().item<float>()), m2Scale = reference.Values.Max(s => s.ExpAvgSq.abs().max().item<float>());
        output.WriteLine($"one AdamW step, MaeMl vs PyTorch 1.13 (checkpoint-1.pth): max |diff| weights {weightErr:E2} (of {weightScale:E2}), " +
                         $"exp_avg {m1Err:E2} (of {m1Scale:E2}), exp_avg_sq {m2Err:E2} (of {m2Scale:E2})");
        Assert.InRange(weightErr, 0, 1e-7);
        Assert.InRange(m1Err, 0, 1e-6 * m1Scale);
        Assert.InRange(m2Err, 0, 1e-6 * m2Scale);
        grads = FixtureGradients();

        // step 2: from the imported file (two MaeMl groups, the file's settings) and from the file's state loaded into the file's one group
        using var exact = new MaskedAutoencoderViT(header.Config);
        using (no_grad()) foreach (var (name, t) in exact.state_dict()) t.copy_(fileModel[name]);
        using var exactOptimizer = new MaeMl.Training.AdamW([new TorchSharp.Modules.AdamW.ParamGroup(exact.parameters(), 1e-3, 0.9, 0.95, 1e-8, 0.05)], 1e-3, 0.9, 0.95);
        using (no_grad())
            foreach (var (name, st) in StateByName(exact, exactOptimizer))
                if (reference.TryGetValue(name, out var r)) { st.step = r.Step; st.exp_avg.copy_(r.ExpAvg); st.exp_avg_sq.copy_(r.ExpAvgSq); }
        foreach (var (m, o) in new (nn.Module, TorchSharp.Modules.AdamW)[] { (model, optimizer), (exact, exactOptimizer) })
        {
            foreach (var g in o.ParamGroups) g.LearningRate = 7e-4;
            SetGradients(m, grads);
            o.step();
            o.zero_grad();
        }
        double step2 = model.state_dict().Max(kv => MaxDiff(kv.Value, exact.state_dict()[kv.Key]));
        var after = StateByName(exact, exactOptimizer);
        double step2Moments = StateByName(model, optimizer).Max(kv => Math.Max(MaxDiff(kv.Value.exp_avg, after[kv.Key].exp_avg), MaxDiff(kv.Value.exp_avg_sq, after[kv.Key].exp_avg_sq)));
        output.WriteLine($"step 2 from the imported .maeml vs from the file's state in memory: weights {step2:E2}, moments {step2Moments:E2}");
        Assert.Equal(0, step2);
        Assert.Equal(0, step2Moments);
        Assert.All(StateByName(model, optimizer), kv => Assert.Equal(reference.ContainsKey(kv.Key) ? 2 : 0, kv.Value.step));
    }

    /// <summary>A MaeMl run after <paramref name="steps"/> AdamW steps, saved with the header <see cref="Pretrainer"/> writes.</summary>
    static string SaveRun(string dir, int steps, int epoch, int stepInEpoch, int stepsPerEpoch = 4)
    {
        torch.manual_seed(11);
        using var model = new MaskedAutoencoderViT(FixtureConfig);
        var options = new PretrainOptions { DataDir = "/data/imagenet/train", OutputDir = "/runs/tiny", Model = FixtureConfig, Epochs = 10, WarmupEpochs = 2, BatchSize = 16, AccumIter = 2, BaseLr = 1.5e-4, WeightDecay = 0.05, Seed = 5 };
        using var optimizer = new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(model, options.PeakLr, options.WeightDecay), options.PeakLr, 0.9, 0.95);
        for (int s = 0; s < steps; s++)
        {
            using var scope = NewDisposeScope();
            foreach (var g in optimizer.ParamGroups) g.LearningRate = options.PeakLr * (s + 1) / steps;
            model.Forward(torch.randn(2, 3, 16, 16), torch.rand(new long[] { 2, FixtureConfig.NumPatches })).Loss.backward();
            optimizer.step();
            optimizer.zero_grad();
        }
        var path = Path.Combine(dir, "checkpoint-last.maeml");
        MaeCheckpoint.Save(path, model, new JsonObject
        {
            ["epoch"] = epoch, ["step_in_epoch"] = stepInEpoch, ["optimizer_steps"] = steps, ["seed"] = options.Seed, ["steps_per_epoch"] = stepsPerEpoch,
            ["options"] = JsonSerializer.SerializeToNode(options),
        }, optimizer);
        return path;
    }

    /// <summary>(2) Export: re-read with our .pth reader, every tensor is MaeMl's and the param groups are main_pretrain.py's
    /// (timm add_weight_decay order, frozen position tables left out); importing it back gives the same run.</summary>
    [Fact]
    public void ExportWritesTheOfficialLayoutWithEveryTensorAndImportsBack()
    {
        using var scope = NewDisposeScope();
        var dir = TestImages.TempDir("handoff-export");
        var maeml = SaveRun(dir, steps: 3, epoch: 3, stepInEpoch: 0);
        var pth = Path.Combine(dir, "checkpoint-2.pth");
        var result = OfficialTrainingCheckpoint.Export(maeml, pth);
        foreach (var n in result.Notes) output.WriteLine($"note: {n}");
        output.WriteLine("torchrun --nproc_per_node=4 main_pretrain.py " + string.Join(' ', result.MainPretrainArguments(4)));
        Assert.Equal(2, result.OfficialEpoch);
        Assert.Equal(3, result.ResumesAtEpoch);
        Assert.Equal(3, result.OptimizerSteps);
        Assert.Contains("--batch_size 4", string.Join(' ', result.MainPretrainArguments(4)));   // 16 x 2 = 32 = 4 GPUs x 4 x accum 2
        Assert.Equal((16, 1, true), result.Split(2));    // MaeMl's batch per GPU when it divides
        Assert.Equal((4, 2, true), result.Split(4));
        Assert.Equal((11, 1, false), result.Split(3));   // 32 does not split over 3 GPUs

        using var model = new MaskedAutoencoderViT(FixtureConfig);
        using var optimizer = new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(model, 1, 0), 1, 0.9, 0.95);
        MaeCheckpoint.LoadInto(maeml, model, optimizer);
        var ours = StateByName(model, optimizer);

        using var file = OfficialTrainingCheckpointFile.Read(pth);
        Assert.Equal(2, file.Epoch);
        var fileModel = file.Model.ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(model.state_dict().Keys.Order(), fileModel.Keys.Order());
        foreach (var (name, t) in model.state_dict()) Assert.True(OfficialFixture.Identical(t, fileModel[name]), $"weight {name} differs");

        // param_groups: [no decay, decay] numbered 0.. across groups, frozen pos_embed / decoder_pos_embed in neither
        var timm = OfficialTimmGrouping();
        Assert.Equal(2, file.ParamGroups.Count);
        Assert.Equal(Enumerable.Range(0, timm.Groups[0].Count).Select(i => (long)i), file.ParamGroups[0].Params);
        Assert.Equal(Enumerable.Range(timm.Groups[0].Count, timm.Groups[1].Count).Select(i => (long)i), file.ParamGroups[1].Params);
        Assert.Equal(0.0, file.ParamGroups[0].WeightDecay);
        Assert.Equal(0.05, file.ParamGroups[1].WeightDecay);
        Assert.All(file.ParamGroups, g => Assert.Equal((0.9, 0.95, 1e-8), (g.Beta1, g.Beta2, g.Eps)));
        var (grouping, byName) = file.NameParameters([timm], pth);
        Assert.Same(timm, grouping);
        Assert.Equal(timm.Groups.Sum(g => g.Count), byName.Count);
        foreach (var (name, s) in byName)
        {
            Assert.Equal(3, s.Step);
            Assert.True(OfficialFixture.Identical(ours[name].exp_avg, s.ExpAvg), $"exp_avg of {name} differs");
            Assert.True(OfficialFixture.Identical(ours[name].exp_avg_sq, s.ExpAvgSq), $"exp_avg_sq of {name} differs");
        }
        Assert.DoesNotContain("pos_embed", byName.Keys);
        Assert.DoesNotContain("decoder_pos_embed", byName.Keys);

        // scaler: a fresh GradScaler; args: main_pretrain.py's Namespace for this run
        Assert.Equal(65536.0, file.Scaler.Single(kv => kv.Key == "scale").Value);
        Assert.Equal(2000L, file.Scaler.Single(kv => kv.Key == "growth_interval").Value);
        Assert.Equal(16L, file.Arg("batch_size"));
        Assert.Equal(2L, file.Arg("accum_iter"));
        Assert.Equal(10L, file.Arg("epochs"));
        Assert.Equal(2L, file.Arg("warmup_epochs"));
        Assert.Equal(1.5e-4 * 32 / 256, (double)file.Arg("lr")!, 15);
        Assert.Equal(3L, file.Arg("start_epoch"));
        Assert.Equal(16L, file.Arg("input_size"));
        Assert.True(file.Arg("norm_pix_loss") is true);
        Assert.Equal("/data/imagenet/train", file.Arg("data_path"));

        // the weights part is an ordinary official .pth too
        using (var mae = MaeModelFile.LoadMae(pth, new MaeLoadOptions { NumHeads = 2, DecoderNumHeads = 2 }))
            Assert.True(OfficialFixture.Identical(mae.state_dict()["blocks.0.attn.qkv.weight"], model.state_dict()["blocks.0.attn.qkv.weight"]));

        // and back: the same run
        var back = Path.Combine(dir, "back.maeml");
        var imported = OfficialTrainingCheckpoint.Import(pth, back, new OfficialImportOptions { Load = new MaeLoadOptions { NumHeads = 2, DecoderNumHeads = 2 } });
        Assert.Equal(3, imported.Epoch);
        Assert.Equal(3, imported.OptimizerSteps);
        Assert.Equal(32, imported.Run.EffectiveBatchSize);
        Assert.Equal(1.5e-4 * 32 / 256, imported.Run.PeakLr, 15);
        Assert.Equal((10, 2.0, 5), (imported.Run.Epochs, imported.Run.WarmupEpochs, imported.Run.Seed));
        var header = MaeCheckpoint.ReadHeader(back);
        Assert.Equal(MaeCheckpoint.ReadHeader(maeml).Config, header.Config);
        Assert.Equal((3, 0, 3L), (header.Training["epoch"]!.GetValue<int>(), header.Training["step_in_epoch"]!.GetValue<int>(), header.Training["optimizer_steps"]!.GetValue<long>()));
        using var model2 = new MaskedAutoencoderViT(FixtureConfig);
        using var optimizer2 = new MaeMl.Training.AdamW(ParameterGroups.AdamWGroups(model2, 1, 0), 1, 0.9, 0.95);
        MaeCheckpoint.LoadInto(back, model2, optimizer2);
        foreach (var (name, t) in model.state_dict()) Assert.True(OfficialFixture.Identical(t, model2.state_dict()[name]), $"weight {name} differs after the round trip");
        var ours2 = StateByName(model2, optimizer2);
        foreach (var (name, st) in ours)
        {
            Assert.Equal(st.step, ours2[name].step);
            Assert.True(OfficialFixture.Identical(st.exp_avg, ours2[name].exp_avg) && OfficialFixture.Identical(st.exp_avg_sq, ours2[name].exp_avg_sq), $"moments of {name} differ after the round trip");
        }
        var groups = optimizer.ParamGroups.Cast<TorchSharp.Modules.AdamW.ParamGroup>().Zip(optimizer2.ParamGroups.Cast<TorchSharp.Modules.AdamW.ParamGroup>());
        foreach (var (a, b) in groups)
            Assert.Equal((a.Options.LearningRate, a.Options.beta1, a.Options.beta2, a.Options.eps, a.Options.weight_decay),
                         (b.Options.LearningRate, b.Options.beta1, b.Options.beta2, b.Options.eps, b.Options.weight_decay));
    }

    /// <summary>(3) The exported archive passes our own SafePickleValidator and names only the four globals torch.save uses for it.</summary>
    [Fact]
    public void ExportedFilePassesOurPickleValidator()
    {
        var dir = TestImages.TempDir("handoff-validate");
        var pth = Path.Combine(dir, "checkpoint.pth");
        OfficialTrainingCheckpoint.Export(SaveRun(dir, steps: 1, epoch: 1, stepInEpoch: 0), pth);
        using var zip = ZipFile.OpenRead(pth);
        var entry = Assert.Single(zip.Entries, e => e.FullName.EndsWith("data.pkl", StringComparison.Ordinal));
        using var ms = new MemoryStream();
        using (var s = entry.Open()) s.CopyTo(ms);
        var globals = SafePickleValidator.Validate(ms.ToArray(), pth);
        Assert.Equal(new[] { "argparse.Namespace", "collections.OrderedDict", "torch.FloatStorage", "torch._utils._rebuild_tensor_v2" }, globals.Order(StringComparer.Ordinal));
        Assert.Equal("archive/version", zip.Entries.Last().FullName);
        Assert.All(zip.Entries, e => Assert.Equal(e.Length, e.CompressedLength));   // stored, as torch.save writes
        // the generic reader takes it too (the state dict under 'model')
        var contents = PyTorchCheckpointFile.Read(pth);
        Assert.Equal("model", contents.Key);
        Assert.Equal(new[] { "args", "epoch", "optimizer", "scaler" }, contents.OtherEntries.Order(StringComparer.Ordinal));
        foreach (var t in contents.StateDict.Values) t.Dispose();
        // same content, same bytes
        var again = Path.Combine(dir, "again.pth");
        OfficialTrainingCheckpoint.Export(Path.Combine(dir, "checkpoint-last.maeml"), again);
        Assert.Equal(File.ReadAllBytes(pth), File.ReadAllBytes(again));
    }

    [Fact]
    public void MidEpochCheckpointsAreRoundedToAnEpochOrRefused()
    {
        var dir = TestImages.TempDir("handoff-midepoch");
        var early = SaveRun(dir, steps: 1, epoch: 3, stepInEpoch: 1, stepsPerEpoch: 4);
        var pth = Path.Combine(dir, "x.pth");
        var nearest = OfficialTrainingCheckpoint.Export(early, pth);
        Assert.Equal(2, nearest.OfficialEpoch);   // 1 of 4 steps: down, the official run repeats epoch 3
        Assert.Contains(nearest.Notes, n => n.Contains("rounded down"));
        var up = OfficialTrainingCheckpoint.Export(early, pth, new OfficialExportOptions { MidEpoch = MidEpochPosition.Up });
        Assert.Equal(3, up.OfficialEpoch);
        Assert.Contains(up.Notes, n => n.Contains("rounded up"));
        var e = Assert.Throws<InvalidDataException>(() => OfficialTrainingCheckpoint.Export(early, pth, new OfficialExportOptions { MidEpoch = MidEpochPosition.Refuse }));
        Assert.Contains("inside epoch 3", e.Message);
        var late = SaveRun(dir, steps: 1, epoch: 3, stepInEpoch: 3, stepsPerEpoch: 4);
        Assert.Equal(3, OfficialTrainingCheckpoint.Export(late, pth).OfficialEpoch);
    }

    [Fact]
    public void FilesThatAreNoTrainingCheckpointAreRefusedWithTheReason()
    {
        var dir = TestImages.TempDir("handoff-refuse");
        var e = Assert.Throws<InvalidDataException>(() => OfficialTrainingCheckpoint.Import(Pth("finetuned.pth"), Path.Combine(dir, "x.maeml")));
        Assert.Contains("no 'optimizer' entry", e.Message);
        // a weights-only .maeml has nothing to resume
        using (var model = new MaskedAutoencoderViT(FixtureConfig)) MaeCheckpoint.Save(Path.Combine(dir, "weights.maeml"), model);
        var e2 = Assert.Throws<InvalidDataException>(() => OfficialTrainingCheckpoint.Export(Path.Combine(dir, "weights.maeml"), Path.Combine(dir, "x.pth")));
        Assert.Contains("no optimizer state", e2.Message);
        Assert.False(File.Exists(Path.Combine(dir, "x.maeml")) || File.Exists(Path.Combine(dir, "x.pth")));
    }

    /// <summary>The imported file is a run <see cref="Pretrainer"/> resumes: it starts at the official epoch + 1 and counts on from the
    /// file's optimizer step.</summary>
    [Fact]
    public void PretrainerResumesAnImportedCheckpoint()
    {
        var data = TestImages.TempDir("handoff-data");
        TestImages.Write(data, 16, size: 16);
        var outDir = TestImages.TempDir("handoff-run");
        var imported = OfficialTrainingCheckpoint.Import(CheckpointOne, Path.Combine(outDir, "imported.maeml"),
            new OfficialImportOptions { Load = new MaeLoadOptions { NumHeads = 2, DecoderNumHeads = 2 } });
        var lines = new List<string>();
        var run = imported.Run with { DataDir = data, OutputDir = outDir, Epochs = 3, WarmupEpochs = 1, BatchSize = 8, Resume = imported.Path, Prefetch = 1, Precision = TrainingPrecision.Float32 };
        var result = new Pretrainer(run, new ConsoleProgress(TextWriter.Null), lines.Add).Run();
        Assert.Contains(lines, l => l.Contains("resumed from") && l.Contains("epoch 2") && l.Contains("optimizer step 1"));
        Assert.Equal(3, result.EpochsDone);
        Assert.Equal(1 + 2, result.OptimizerSteps);   // 16 images / batch 8 = 2 steps in epoch 2
    }

    internal static string SaveRunForCli(string dir, int steps, int epoch) => SaveRun(dir, steps, epoch, 0);
    internal static string FixturePth(string name) => Pth(name);
}

/// <summary><c>maeml handoff export|import</c> (console redirection is process-wide: the CLI collection).</summary>
[Collection("InteropCliConsole")]
public sealed class HandoffCommandTests(ITestOutputHelper output)
{
    [Fact]
    public void HandoffCommandsExportAndImport()
    {
        var dir = TestImages.TempDir("handoff-cli");
        var maeml = OfficialTrainingCheckpointTests.SaveRunForCli(dir, steps: 2, epoch: 1);
        var pth = Path.Combine(dir, "checkpoint-0.pth");
        var (code, stdout, stderr) = CliRunner.Run("handoff", "export", maeml, "--out", pth, "--gpus", "2");
        output.WriteLine(stdout + stderr);
        Assert.Equal(0, code);
        Assert.Contains("torchrun --nproc_per_node=2 main_pretrain.py --resume", stdout);
        Assert.Contains("--resume starts at epoch 1", stdout);
        var back = Path.Combine(dir, "back.maeml");
        (code, stdout, stderr) = CliRunner.Run("handoff", "import", pth, "--out", back);
        output.WriteLine(stdout + stderr);
        Assert.Equal(0, code);   // args.model names the custom architecture, heads included
        Assert.Contains("resumes at epoch 1, 2 AdamW steps", stdout);
        Assert.Contains("maeml pretrain --resume", stdout);
        // the torch-written fixture's args.model ('mae_tiny_fixture') gives no heads: the one-line error says what is missing
        (code, stdout, stderr) = CliRunner.Run("handoff", "import", OfficialTrainingCheckpointTests.FixturePth("checkpoint-1.pth"), "--out", back);
        output.WriteLine(stdout + stderr);
        Assert.Equal(2, code);
        Assert.Contains("heads", stderr);
        (code, stdout, stderr) = CliRunner.Run("handoff", "import", OfficialTrainingCheckpointTests.FixturePth("checkpoint-1.pth"), "--out", back, "--heads", "2", "--decoder-heads", "2");
        output.WriteLine(stdout + stderr);
        Assert.Equal(0, code);
        Assert.Contains("resumes at epoch 2, 1 AdamW steps taken", stdout);
    }
}
