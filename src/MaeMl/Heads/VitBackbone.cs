using MaeMl.Interop;
using MaeMl.Model;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MaeMl.Heads;

/// <summary>
/// The plain ViT of a MAE encoder as a dense backbone (ViTDet's <c>backbone.net</c>): all patches, no masking, the final
/// <c>norm</c>, and the patch tokens returned as the last feature map [N, D, H/p, W/p] (the cls token is dropped).
/// State-dict keys are the MAE encoder's (<c>patch_embed.proj</c>, <c>cls_token</c>, <c>pos_embed</c>, <c>blocks.N</c>,
/// <c>norm</c>), so <see cref="LoadEncoder"/> copies a pretrained encoder one to one, interpolating the position table when
/// the patch grid differs (<see cref="PositionEmbeddingInterpolation"/>). The position table is learnable here.
/// </summary>
public sealed class VitBackbone : nn.Module<Tensor, Tensor>
{
    readonly PatchEmbed patch_embed;
    readonly Parameter cls_token;
    readonly Parameter pos_embed;
    readonly ModuleList<Block> blocks;
    readonly LayerNorm norm;

    /// <summary>Architecture; <see cref="MaeConfig.ImageSize"/> is the input size this backbone takes (decoder fields are unused).</summary>
    public MaeConfig Config { get; }

    public VitBackbone(MaeConfig config) : base(nameof(VitBackbone))
    {
        Config = config.Validate();
        var c = config;
        patch_embed = new PatchEmbed(c.ImageSize, c.PatchSize, c.InChans, c.EmbedDim);
        cls_token = new Parameter(zeros(1, 1, c.EmbedDim));
        pos_embed = new Parameter(zeros(1, c.NumPatches + 1, c.EmbedDim));
        blocks = VitInit.EncoderBlocks(c);
        norm = nn.LayerNorm(c.EmbedDim, c.LayerNormEps);
        RegisterComponents();
        // same initialisation as the MAE encoder (a "from scratch" baseline starts where pretraining starts)
        using var _ = no_grad();
        pos_embed.copy_(tensor(PositionEmbedding.SinCos2D(c.EmbedDim, c.GridSize, clsToken: true)).unsqueeze(0));
        using (var w = patch_embed.Proj.weight!.view(c.EmbedDim, -1)) nn.init.xavier_uniform_(w);
        nn.init.normal_(cls_token, std: 0.02);
        VitInit.XavierLinearsUnitNorms(this);
    }

    /// <summary>Channels of the feature map (the embedding width).</summary>
    public int Channels => Config.EmbedDim;

    /// <summary>Stride of the feature map in pixels (the patch size).</summary>
    public int Stride => Config.PatchSize;

    /// <summary>imgs [N, C, S, S] -> feature map [N, D, S/p, S/p].</summary>
    public override Tensor forward(Tensor imgs)
    {
        using var scope = NewDisposeScope();
        var x = patch_embed.forward(imgs);                                     // [N, L, D]
        var cls = cls_token.expand(x.shape[0], -1, -1);
        x = cat(new[] { cls, x }, 1).add(pos_embed, Scalars.One);              // [N, 1+L, D]
        foreach (var blk in blocks) x = blk.forward(x);
        x = norm.forward(x)[.., 1..];                                          // [N, L, D]
        int g = Config.GridSize;
        return x.transpose(1, 2).reshape(x.shape[0], Config.EmbedDim, g, g).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Copies encoder weights by official MAE name (decoder keys are ignored). <c>cls_token + pos_embed[:, :1]</c> and the
    /// grid rows are taken as the MAE encoder adds them, the grid rows bicubically resized to this backbone's grid.
    /// Returns the names copied.
    /// </summary>
    /// <exception cref="ArgumentException">A needed weight is missing or has another shape (the message names it).</exception>
    public IReadOnlyList<string> LoadEncoder(IReadOnlyDictionary<string, Tensor> state)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var copied = new List<string>();
        foreach (var (name, param) in named_parameters())
        {
            if (!state.TryGetValue(name, out var source)) throw new ArgumentException($"The encoder weights have no '{name}'");
            var value = source;
            if (name == "pos_embed" && !source.shape.SequenceEqual(param.shape))
            {
                if (source.shape[2] != param.shape[2]) throw new ArgumentException($"'pos_embed' is [{string.Join(", ", source.shape)}], this backbone needs width {param.shape[2]}");
                value = PositionEmbeddingInterpolation.Interpolate(source, Config.GridSize);
            }
            if (!value.shape.SequenceEqual(param.shape))
                throw new ArgumentException($"Weight '{name}' is [{string.Join(", ", value.shape)}], this backbone needs [{string.Join(", ", param.shape)}]");
            param.copy_(value.to(param.dtype, param.device));
            copied.Add(name);
        }
        return copied;
    }

    /// <summary>A backbone for <paramref name="imageSize"/> inputs with the encoder of <paramref name="mae"/> (position table interpolated).</summary>
    public static VitBackbone FromMae(MaskedAutoencoderViT mae, int imageSize)
    {
        var backbone = new VitBackbone(mae.Config with { ImageSize = imageSize, DropPath = 0 });
        var state = mae.state_dict();
        backbone.LoadEncoder(state.Where(kv => MaskedAutoencoderViT.IsEncoderKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value));
        return backbone;
    }
}
