using MaeMl.Model;
using MaeMl.Training;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace MaeMl.Tests.Model;

/// <summary>ViTDet's backbone option (window attention, decomposed relative positions) against slow references written here.</summary>
[Collection("TorchGlobalRng")]   // seeds torch's global generator: not beside another test that draws from it
public class VitDetBackboneTests
{
    static VisionTransformer Backbone(BackboneAttention attention, int size = 32, int depth = 2, int seed = 0)
    {
        manual_seed(seed);
        var vit = new VisionTransformer(VitClassifierConfig.Backbone(DenseTestData.TinyEncoder(size) with { Depth = depth }, attention));
        using (no_grad())
            foreach (var (name, p) in vit.named_parameters())   // exercise biases, norms, the position table and the relative positions
                if (name.EndsWith("bias") || name.Contains("norm") || name.Contains("rel_pos") || name == "pos_embed") p.add_(randn_like(p) * 0.3);
        vit.eval();
        return vit;
    }

    [Fact]
    public void WindowPartitionPadsAndUnpartitionRestores()
    {
        using var x = randn(2, 5, 7, 3);
        var (windows, hp, wp) = VitDetOps.WindowPartition(x, 3);
        using (windows)
        {
            Assert.Equal((6L, 9L), (hp, wp));
            Assert.Equal(new long[] { 2 * 2 * 3, 3, 3, 3 }, windows.shape);
            // window (row 0, col 1) of image 1 is x[1, 0:3, 3:6]; window (row 1, col 2) of image 0 holds x[0, 3:5, 6:7] and zeros
            using var w01 = windows[1 * 6 + 0 * 3 + 1];
            Assert.True(w01.eq(x[1, 0..3, 3..6]).all().item<bool>());
            using var w12 = windows[0 * 6 + 1 * 3 + 2];
            Assert.True(w12[0..2, 0..1].eq(x[0, 3..5, 6..7]).all().item<bool>());
            Assert.Equal(0f, w12[2].abs().sum().item<float>() + w12[.., 1..].abs().sum().item<float>());
            using var back = VitDetOps.WindowUnpartition(windows, 3, hp, wp, 5, 7);
            Assert.True(back.eq(x).all().item<bool>());
        }
    }

    [Fact]
    public void RelPosTableIsGatheredByRelativeOffsetAndInterpolatedToOtherSizes()
    {
        using var table = randn(7, 4);                       // 2 * 4 - 1 rows
        using var r = VitDetOps.GetRelPos(4, 4, table);      // [4, 4, 4]
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                Assert.True(r[i, j].eq(table[i - j + 3]).all().item<bool>(), $"({i}, {j})");
        using var constant = full(7, 4, 2.5f);
        using var resized = VitDetOps.GetRelPos(6, 6, constant);   // linearly resized to 11 rows
        Assert.Equal(new long[] { 6, 6, 4 }, resized.shape);
        Assert.True(resized.sub(2.5f).abs().max().item<float>() < 1e-6f);
    }

    [Fact]
    public void RelPosBiasMatchesAPairByPairReference()
    {
        manual_seed(4);
        using var q = randn(2, 3, 3 * 5, 8);                 // [B, heads, qh*qw, hd], grid 3 x 5
        using var rh = randn(5, 8);
        using var rw = randn(9, 8);
        using var bias = VitDetOps.DecomposedRelPosBias(q, rh, rw, (3, 5), (3, 5));
        var expected = new float[2 * 3 * 15 * 15];
        var qv = q.contiguous().data<float>().ToArray();
        var rhv = rh.data<float>().ToArray();
        var rwv = rw.data<float>().ToArray();
        for (int b = 0; b < 6; b++)
            for (int t1 = 0; t1 < 15; t1++)
                for (int t2 = 0; t2 < 15; t2++)
                {
                    int qi = t1 / 5, qj = t1 % 5, ki = t2 / 5, kj = t2 % 5;
                    double s = 0;
                    for (int c = 0; c < 8; c++)
                        s += qv[(b * 15 + t1) * 8 + c] * (rhv[(qi - ki + 2) * 8 + c] + rwv[(qj - kj + 4) * 8 + c]);
                    expected[(b * 15 + t1) * 15 + t2] = (float)s;
                }
        var actual = bias.contiguous().data<float>().ToArray();
        Assert.Equal(new long[] { 2, 3, 15, 15 }, bias.shape);
        Assert.True(actual.Zip(expected, (a, e) => Math.Abs(a - e)).Max() < 1e-4f);
    }

    /// <summary>The backbone computed slowly and independently: the patch grid plus the table without its cls row, then per block
    /// explicit attention (softmax of q k^T / sqrt(hd) + per-pair relative bias) window by window over a zero-padded copy of the
    /// normed grid, or over the whole grid; exact GELU MLP; the final norm. Returns [N, D, h, w].</summary>
    static Tensor Reference(VisionTransformer vit, Tensor imgs, BackboneAttention a)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var sd = vit.state_dict();
        var e = vit.Config.Encoder;
        int p = e.PatchSize, d = e.EmbedDim, heads = e.NumHeads, hd = d / heads;
        long n = imgs.shape[0], gh = imgs.shape[2] / p, gw = imgs.shape[3] / p;
        var x = nn.functional.conv2d(imgs, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], strides: new long[] { p, p }).permute(0, 2, 3, 1);
        x = x + sd["pos_embed"][.., 1..].reshape(1, gh, gw, d);
        Tensor Ln(Tensor v, string name) => nn.functional.layer_norm(v, new long[] { d }, sd[$"{name}.weight"], sd[$"{name}.bias"], e.LayerNormEps);
        for (int b = 0; b < e.Depth; b++)
        {
            var pre = $"blocks.{b}";
            int ws = a.IsWindowed(b) ? a.WindowSize : 0;
            long hp = ws > 0 ? (gh + ws - 1) / ws * ws : gh, wp = ws > 0 ? (gw + ws - 1) / ws * ws : gw, wh = ws > 0 ? ws : gh, ww = ws > 0 ? ws : gw;
            var normed = zeros(n, hp, wp, d);
            normed[.., ..(int)gh, ..(int)gw] = Ln(x, $"{pre}.norm1");
            var outGrid = zeros(n, hp, wp, d);
            for (long r0 = 0; r0 < hp; r0 += wh)
                for (long c0 = 0; c0 < wp; c0 += ww)
                {
                    var tokens = normed[.., (int)r0..(int)(r0 + wh), (int)c0..(int)(c0 + ww)].reshape(n, wh * ww, d);
                    var qkv = nn.functional.linear(tokens, sd[$"{pre}.attn.qkv.weight"], sd[$"{pre}.attn.qkv.bias"]).reshape(n, wh * ww, 3, heads, hd).permute(2, 0, 3, 1, 4);
                    Tensor q = qkv[0], k = qkv[1], v = qkv[2];
                    var scores = q.matmul(k.transpose(-2, -1)) * Math.Pow(hd, -0.5);
                    if (a.RelativePositions)
                    {
                        var rh = sd[$"{pre}.attn.rel_pos_h"]; var rw = sd[$"{pre}.attn.rel_pos_w"];
                        var rows = new List<Tensor>();
                        for (long t1 = 0; t1 < wh * ww; t1++)
                            for (long t2 = 0; t2 < wh * ww; t2++)
                                rows.Add(rh[t1 / ww - t2 / ww + wh - 1] + rw[t1 % ww - t2 % ww + ww - 1]);
                        var pair = stack(rows).reshape(wh * ww, wh * ww, hd);                                  // [T, T, hd]
                        scores = scores + (q.unsqueeze(3) * pair.unsqueeze(0).unsqueeze(0)).sum(-1);
                    }
                    var o = scores.softmax(-1).matmul(v).transpose(1, 2).reshape(n, wh * ww, d);
                    o = nn.functional.linear(o, sd[$"{pre}.attn.proj.weight"], sd[$"{pre}.attn.proj.bias"]);
                    outGrid[.., (int)r0..(int)(r0 + wh), (int)c0..(int)(c0 + ww)] = o.reshape(n, wh, ww, d);
                }
            x = x + outGrid[.., ..(int)gh, ..(int)gw];
            var m = nn.functional.linear(Ln(x, $"{pre}.norm2"), sd[$"{pre}.mlp.fc1.weight"], sd[$"{pre}.mlp.fc1.bias"]);
            x = x + nn.functional.linear(nn.functional.gelu(m), sd[$"{pre}.mlp.fc2.weight"], sd[$"{pre}.mlp.fc2.bias"]);
        }
        return Ln(x, "norm").permute(0, 3, 1, 2).contiguous().MoveToOuterDisposeScope();
    }

    static double MaxDiff(Tensor a, Tensor b) { using var dd = (a - b).abs().max(); return dd.item<float>(); }

    [Fact]
    public void AWindowTheSizeOfTheGridWithoutRelPosIsGlobalAttentionWithoutCls()
    {
        var attention = new BackboneAttention { WindowSize = 4 };           // 32 px, patch 8: a 4 x 4 grid, one window, no global block
        using var vit = Backbone(attention);
        using var x = randn(2, 3, 32, 32);
        using var map = vit.forward(x);
        using var global = Reference(vit, x, new BackboneAttention());        // no windows: every block over the whole grid
        Assert.Equal(new long[] { 2, 32, 4, 4 }, map.shape);
        Assert.True(MaxDiff(map, global) < 1e-4, $"max diff {MaxDiff(map, global)}");
        using var withCls = new VisionTransformer(VitClassifierConfig.Backbone(vit.Config.Encoder));
        withCls.load_state_dict(vit.state_dict());
        withCls.eval();
        using var clsMap = withCls.forward(x);                                // today's backbone: the cls token takes part
        Assert.True(MaxDiff(map, clsMap) > 1e-3);
    }

    [Fact]
    public void PaddedWindowsGlobalBlocksAndRelPosMatchTheSlowReference()
    {
        // 40 px, patch 8: a 5 x 5 grid; window 3 pads it to 6 x 6 (4 windows); block 1 of 3 is global (rel pos tables 2*5-1 rows)
        var attention = new BackboneAttention { WindowSize = 3, GlobalBlocks = [1], RelativePositions = true };
        using var vit = Backbone(attention, size: 40, depth: 3);
        var shapes = vit.state_dict().Where(kv => kv.Key.Contains("rel_pos")).ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(new long[] { 5, 16 }, shapes["blocks.0.attn.rel_pos_h"]);
        Assert.Equal(new long[] { 9, 16 }, shapes["blocks.1.attn.rel_pos_w"]);
        Assert.Equal(6, shapes.Count);
        using var x = randn(2, 3, 40, 40);
        using var map = vit.forward(x);
        using var expected = Reference(vit, x, attention);
        Assert.Equal(new long[] { 2, 32, 5, 5 }, map.shape);
        Assert.True(MaxDiff(map, expected) < 1e-4, $"max diff {MaxDiff(map, expected)}");
        using var noBias = Reference(vit, x, attention with { RelativePositions = false });
        Assert.True(MaxDiff(map, noBias) > 1e-3);                             // the bias is exercised
    }

    [Fact]
    public void MaeFixtureWeightsLoadUnchangedIntoAWindowedBackbone()
    {
        var theirs = OfficialFixture.StateDict();
        var encoder = theirs.Where(kv => MaskedAutoencoderViT.IsEncoderKey(kv.Key)).ToDictionary(kv => kv.Key, kv => kv.Value);
        using var vit = new VisionTransformer(VitClassifierConfig.Backbone(OfficialFixture.Config, BackboneAttention.VitDet(OfficialFixture.Config.Depth)));
        var copied = vit.LoadEncoder(encoder);
        var ours = vit.state_dict();
        Assert.Equal(ours.Keys.Where(k => !k.Contains("rel_pos")).OrderBy(k => k), copied.OrderBy(k => k));
        foreach (var name in copied) Assert.True(OfficialFixture.Identical(ours[name], encoder[name]), name);
        var relPos = ours.Keys.Where(k => k.Contains("rel_pos")).ToList();
        Assert.Equal(2 * OfficialFixture.Config.Depth, relPos.Count);                       // new tensors: left at their zero init
        Assert.All(relPos, k => Assert.Equal(0f, ours[k].abs().sum().item<float>()));
        foreach (var t in theirs.Values) t.Dispose();
    }

    [Fact]
    public void RelPosParametersSitInTheirBlocksLayerAndDecayAsDetectron2()
    {
        using var vit = Backbone(BackboneAttention.VitDet(2));
        Assert.Equal(2, LayerDecay.LayerId("blocks.1.attn.rel_pos_h", vit.NumLayers));
        // detectron2's ViTDet optimizer: get_default_optimizer_params(weight_decay_norm=0, overrides={"pos_embed": {"weight_decay": 0}}),
        // so rel_pos_h / rel_pos_w keep the weight decay; layer decay 0.7 puts them in their block's layer
        var (groups, scales) = ParameterGroups.DenseAdamWGroups(vit, n => n, 1e-3, 0.1, 0.1, layerDecay: 0.7, numLayers: vit.NumLayers);
        var named = vit.named_parameters().ToDictionary(np => np.parameter.Handle, np => np.name);
        for (int i = 0; i < groups.Count; i++)
        {
            var names = groups[i].Parameters.Select(p => named[p.Handle]).ToList();
            foreach (var name in names.Where(VitDetOps.IsRelativePosition))
            {
                int layer = int.Parse(name.Split('.')[1]) + 1;
                Assert.Equal(0.1 * Math.Pow(0.7, vit.NumLayers - layer), scales[i], 12);
                Assert.Equal(0.1, groups[i].Options.weight_decay!.Value);
            }
            if (names.Contains("pos_embed")) Assert.Equal(0.0, groups[i].Options.weight_decay!.Value);
        }
    }

    [Fact]
    public void BadSettingsAreOneLineArgumentErrors()
    {
        var e = DenseTestData.TinyEncoder();
        Assert.Contains("global block 5", Assert.Throws<ArgumentException>(() => new BackboneAttention { WindowSize = 2, GlobalBlocks = [5] }.Validate(2)).Message);
        Assert.Contains("need a window size", Assert.Throws<ArgumentException>(() => new BackboneAttention { GlobalBlocks = [0] }.Validate(2)).Message);
        Assert.Contains(">= 0", Assert.Throws<ArgumentException>(() => new BackboneAttention { WindowSize = -1 }.Validate(2)).Message);
        Assert.Contains("dense", Assert.Throws<ArgumentException>(() => new VitClassifierConfig(e, 10) { Attention = BackboneAttention.VitDet(2) }.Validate()).Message);
        Assert.Equal([2, 5, 8, 11], BackboneAttention.VitDetBase.GlobalBlocks);
        Assert.Equal([5, 11, 17, 23], BackboneAttention.VitDetGlobalBlocks(24));
        Assert.Equal([7, 15, 23, 31], BackboneAttention.VitDetGlobalBlocks(32));
    }
}
