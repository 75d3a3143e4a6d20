"""Looking inside models: attention maps (`attention_maps`) and their pictures.

    maps = attention_maps(model, inputs)
    save_attention_heatmaps(maps, "out/", tokens=tokens)      # out/attention_<group>.png: layers x heads
    save_head_view(maps, "out/head_view.html", tokens=tokens)  # self-contained HTML, works offline
    save_vit_attention(picture, maps, "out/vit.png", patch_size=16)   # ViT: class token over the image

    python -m keras_transformer.inspect attention MODEL --text "..." --output out/

matplotlib is imported only when a picture is drawn.
"""

from keras_transformer.inspect.attention_maps import attention_maps
from keras_transformer.inspect.head_view import head_view_html, save_head_view
from keras_transformer.inspect.heatmaps import attention_figure, save_attention_heatmaps
from keras_transformer.inspect.vit_attention import class_token_attention, save_vit_attention, vit_attention_figure

__all__ = ["attention_maps", "attention_figure", "save_attention_heatmaps", "head_view_html", "save_head_view",
           "class_token_attention", "vit_attention_figure", "save_vit_attention"]
