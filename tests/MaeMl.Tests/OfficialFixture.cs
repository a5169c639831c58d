using System.Text.Json;
using MaeMl.Interop;
using MaeMl.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace MaeMl.Tests;

/// <summary>The official PyTorch MAE fixture (tests/MaeMl.Tests/Fixtures/mae-official-tiny), produced by facebookresearch/mae.</summary>
public static class OfficialFixture
{
    public static string Dir => Path.Combine(AppContext.BaseDirectory, "Fixtures", "mae-official-tiny");
    public static string PathOf(string relative) => Path.Combine(Dir, relative);
    public static Tensor Npy(string relative) => NpyFile.Load(PathOf(relative));

    public static JsonElement Manifest => JsonDocument.Parse(File.ReadAllText(PathOf("manifest.json"))).RootElement;

    public static MaeConfig Config
    {
        get
        {
            var c = Manifest.GetProperty("config");
            return new MaeConfig
            {
                ImageSize = c.GetProperty("img_size").GetInt32(),
                PatchSize = c.GetProperty("patch_size").GetInt32(),
                InChans = c.GetProperty("in_chans").GetInt32(),
                EmbedDim = c.GetProperty("embed_dim").GetInt32(),
                Depth = c.GetProperty("depth").GetInt32(),
                NumHeads = c.GetProperty("num_heads").GetInt32(),
                DecoderEmbedDim = c.GetProperty("decoder_embed_dim").GetInt32(),
                DecoderDepth = c.GetProperty("decoder_depth").GetInt32(),
                DecoderNumHeads = c.GetProperty("decoder_num_heads").GetInt32(),
                MlpRatio = c.GetProperty("mlp_ratio").GetDouble(),
                NormPixLoss = c.GetProperty("norm_pix_loss").GetBoolean(),
                MaskRatio = c.GetProperty("mask_ratio").GetDouble(),
            };
        }
    }

    /// <summary>Every state-dict tensor of the fixture by official name.</summary>
    public static Dictionary<string, Tensor> StateDict() =>
        Manifest.GetProperty("state_dict").EnumerateArray()
            .ToDictionary(e => e.GetProperty("name").GetString()!, e => Npy(e.GetProperty("file").GetString()!));

    /// <summary>A model of the fixture's configuration holding the fixture's weights.</summary>
    public static MaskedAutoencoderViT Model()
    {
        var model = new MaskedAutoencoderViT(Config);
        var ours = model.state_dict();
        var theirs = StateDict();
        Xunit.Assert.Equal(theirs.Keys.OrderBy(k => k), ours.Keys.OrderBy(k => k));
        using (no_grad())
            foreach (var (name, value) in theirs) { ours[name].copy_(value); value.Dispose(); }
        return model;
    }

    /// <summary>Same shape, same dtype, same values.</summary>
    public static bool Identical(Tensor a, Tensor b) =>
        a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.eq(b).all().item<bool>();

    public static double MaxAbsDiff(Tensor a, Tensor b)
    {
        using var d = (a.to_type(ScalarType.Float64) - b.to_type(ScalarType.Float64)).abs().max();
        return d.item<double>();
    }
}
