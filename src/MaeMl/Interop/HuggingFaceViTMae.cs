using System.Text.Json;
using System.Text.RegularExpressions;
using MaeMl.Model;
using static TorchSharp.torch;

namespace MaeMl.Interop;

/// <summary>
/// Hugging Face <c>transformers</c> ViTMAE naming (<c>ViTMAEForPreTraining</c>: <c>vit.*</c> + <c>decoder.*</c>;
/// <c>ViTMAEModel</c>: the same encoder names without <c>vit.</c>) to and from the official MAE state-dict names.
/// Hugging Face splits each fused <c>qkv</c> projection into <c>attention.attention.{query,key,value}</c>; those are
/// concatenated (q, k, v along the output dimension) on the way in and split on the way out, as
/// <c>convert_vit_mae_to_pytorch.py</c> does in reverse.
/// </summary>
public static partial class HuggingFaceViTMae
{
    static readonly (string Hf, string Official)[] LayerParts =
    {
        ("attention.output.dense", "attn.proj"), ("layernorm_before", "norm1"), ("layernorm_after", "norm2"),
        ("intermediate.dense", "mlp.fc1"), ("output.dense", "mlp.fc2"),
    };

    static readonly (string Hf, string Official)[] Fixed =
    {
        ("embeddings.cls_token", "cls_token"), ("embeddings.position_embeddings", "pos_embed"),
        ("embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight"),
        ("embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias"),
        ("layernorm.weight", "norm.weight"), ("layernorm.bias", "norm.bias"),
    };

    static readonly (string Hf, string Official)[] DecoderFixed =
    {
        ("decoder.decoder_embed.weight", "decoder_embed.weight"), ("decoder.decoder_embed.bias", "decoder_embed.bias"),
        ("decoder.mask_token", "mask_token"), ("decoder.decoder_pos_embed", "decoder_pos_embed"),
        ("decoder.decoder_norm.weight", "decoder_norm.weight"), ("decoder.decoder_norm.bias", "decoder_norm.bias"),
        ("decoder.decoder_pred.weight", "decoder_pred.weight"), ("decoder.decoder_pred.bias", "decoder_pred.bias"),
    };

    [GeneratedRegex(@"^(encoder\.layer|decoder\.decoder_layers)\.(\d+)\.(.+)\.(weight|bias)$")] private static partial Regex HfLayerRegex();
    [GeneratedRegex(@"^(blocks|decoder_blocks)\.(\d+)\.(.+)\.(weight|bias)$")] private static partial Regex OfficialLayerRegex();

    /// <summary>True when the names are Hugging Face ViTMAE ones (with or without the <c>vit.</c> prefix).</summary>
    public static bool IsHuggingFace(IEnumerable<string> names) =>
        names.Any(n => n.StartsWith("vit.embeddings.", StringComparison.Ordinal) || n.StartsWith("embeddings.patch_embeddings.", StringComparison.Ordinal)
                       || n.StartsWith("decoder.decoder_layers.", StringComparison.Ordinal));

    /// <summary>
    /// Renames to official names, fusing query/key/value into qkv. Input tensors are taken over: the result holds them
    /// (or the fused copies; the split originals are disposed). Names it does not know are kept as they are (and so
    /// reported as unexpected when loaded); a layer with only some of query/key/value keeps those under their names.
    /// </summary>
    public static Dictionary<string, Tensor> ToOfficial(IReadOnlyDictionary<string, Tensor> hf)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var qkv = new Dictionary<string, Tensor?[]>(StringComparer.Ordinal);   // official qkv name -> [q, k, v]
        var qkvSources = new Dictionary<string, string?[]>(StringComparer.Ordinal);
        foreach (var (fullName, tensor) in hf)
        {
            var name = fullName.StartsWith("vit.", StringComparison.Ordinal) ? fullName[4..] : fullName;
            var official = Fixed.Concat(DecoderFixed).FirstOrDefault(f => f.Hf == name).Official;
            if (official is null && HfLayerRegex().Match(name) is { Success: true } m)
            {
                var block = m.Groups[1].Value == "encoder.layer" ? "blocks" : "decoder_blocks";
                var prefix = $"{block}.{m.Groups[2].Value}";
                var part = m.Groups[3].Value;
                var kind = m.Groups[4].Value;
                int qkvIndex = part switch { "attention.attention.query" => 0, "attention.attention.key" => 1, "attention.attention.value" => 2, _ => -1 };
                if (qkvIndex >= 0)
                {
                    var key = $"{prefix}.attn.qkv.{kind}";
                    if (!qkv.TryGetValue(key, out var parts)) { qkv[key] = parts = new Tensor?[3]; qkvSources[key] = new string?[3]; }
                    parts[qkvIndex] = tensor;
                    qkvSources[key][qkvIndex] = fullName;
                    continue;
                }
                var mapped = LayerParts.FirstOrDefault(p => p.Hf == part).Official;
                if (mapped is not null) official = $"{prefix}.{mapped}.{kind}";
            }
            result[official ?? fullName] = tensor;
        }
        foreach (var (key, parts) in qkv)
        {
            if (parts.All(p => p is not null))
            {
                result[key] = cat(parts!, 0);
                foreach (var p in parts) p!.Dispose();
            }
            else
                for (int i = 0; i < 3; i++) if (parts[i] is { } t) result[qkvSources[key][i]!] = t;
        }
        return result;
    }

    /// <summary>Official names to Hugging Face <c>ViTMAEForPreTraining</c> names (<paramref name="vitPrefix"/> false:
    /// <c>ViTMAEModel</c>, encoder keys only), splitting qkv. Returns new tensors (views are cloned); the input is untouched.</summary>
    public static Dictionary<string, Tensor> FromOfficial(IReadOnlyDictionary<string, Tensor> official, bool vitPrefix = true)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var encoderPrefix = vitPrefix ? "vit." : "";
        foreach (var (name, tensor) in official)
        {
            var hf = Fixed.FirstOrDefault(f => f.Official == name).Hf;
            if (hf is not null) { result[encoderPrefix + hf] = tensor.clone(); continue; }
            hf = DecoderFixed.FirstOrDefault(f => f.Official == name).Hf;
            if (hf is not null) { if (vitPrefix) result[hf] = tensor.clone(); continue; }
            if (OfficialLayerRegex().Match(name) is { Success: true } m)
            {
                bool decoder = m.Groups[1].Value == "decoder_blocks";
                if (decoder && !vitPrefix) continue;
                var prefix = decoder ? $"decoder.decoder_layers.{m.Groups[2].Value}" : $"{encoderPrefix}encoder.layer.{m.Groups[2].Value}";
                var part = m.Groups[3].Value;
                var kind = m.Groups[4].Value;
                if (part == "attn.qkv")
                {
                    var chunks = tensor.chunk(3, 0);
                    string[] names = { "query", "key", "value" };
                    for (int i = 0; i < 3; i++) { result[$"{prefix}.attention.attention.{names[i]}.{kind}"] = chunks[i].clone(); chunks[i].Dispose(); }
                    continue;
                }
                var mapped = LayerParts.FirstOrDefault(p => p.Official == part).Hf;
                if (mapped is not null) { result[$"{prefix}.{mapped}.{kind}"] = tensor.clone(); continue; }
            }
            throw new ArgumentException($"'{name}' has no Hugging Face ViTMAE counterpart (only MAE pretraining weights can be written with Hugging Face names)");
        }
        return result;
    }

    /// <summary>
    /// Settings from a Hugging Face <c>config.json</c> next to the weights (<c>model_type</c> <c>vit_mae</c>), or null when
    /// there is none: heads, LayerNorm eps (1e-12 in transformers' default, 1e-6 in the official code), mask ratio, norm_pix_loss.
    /// </summary>
    public static MaeConfig? ReadConfigJson(string weightsPath)
    {
        var path = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(weightsPath))!, "config.json");
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            var r = doc.RootElement;
            if (!r.TryGetProperty("model_type", out var type) || type.GetString() != "vit_mae") return null;
            int Int(string n, int d) => r.TryGetProperty(n, out var v) ? v.GetInt32() : d;
            double Dbl(string n, double d) => r.TryGetProperty(n, out var v) ? v.GetDouble() : d;
            int hidden = Int("hidden_size", 768);
            return new MaeConfig
            {
                ImageSize = Int("image_size", 224), PatchSize = Int("patch_size", 16), InChans = Int("num_channels", 3),
                EmbedDim = hidden, Depth = Int("num_hidden_layers", 12), NumHeads = Int("num_attention_heads", 12),
                DecoderEmbedDim = Int("decoder_hidden_size", 512), DecoderDepth = Int("decoder_num_hidden_layers", 8),
                DecoderNumHeads = Int("decoder_num_attention_heads", 16),
                MlpRatio = (double)Int("intermediate_size", hidden * 4) / hidden,
                LayerNormEps = Dbl("layer_norm_eps", 1e-12), MaskRatio = Dbl("mask_ratio", 0.75),
                NormPixLoss = r.TryGetProperty("norm_pix_loss", out var npl) && npl.GetBoolean(),
            };
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new InvalidDataException($"'{path}' (the Hugging Face configuration next to '{weightsPath}') is corrupt: {e.Message}", e);
        }
    }
}
