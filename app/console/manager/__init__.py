"""The alliance manager's pages: 总览, 合作机构, 项目与费率, 归因冲突, 推荐查询 (CONSOLE.md, "Pages")."""
